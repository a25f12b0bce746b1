# Copyright (c) tproxy.envoy developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install Ansible's collection finder before the plugin module is imported.

Connection plugins are loaded by name through Ansible's plugin loader; that only works when the
plugin module was imported through the collection finder. If nothing (ansible-test, a top-level
conftest) installed the finder yet, install it here for the directory that holds
ansible_collections/tproxy/envoy on sys.path or in ANSIBLE_COLLECTIONS_PATH.
"""

from __future__ import annotations

import os
import sys

from ansible.plugins import loader
from ansible.utils.collection_loader import AnsibleCollectionConfig


def _collection_roots():
    candidates = list(sys.path) + os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(os.pathsep)
    for path in candidates:
        if path and os.path.isdir(os.path.join(path, 'ansible_collections', 'tproxy', 'envoy')):
            yield path


if AnsibleCollectionConfig.collection_finder is None:
    loader.init_plugin_loader(list(dict.fromkeys(_collection_roots())))
