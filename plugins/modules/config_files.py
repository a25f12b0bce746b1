#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: config_files
short_description: Write several whole files, each validated first and renamed into place, in one run on the host
version_added: 0.2.0
description:
  - A role's configuration files in one round trip, where one C(ansible.builtin.copy) task per file costs one
    (or two) each. Each file is compared with its wanted content and mode; one that differs is written to a
    temporary file in its directory, checked by its O(files[].validate) command, and renamed over the old one,
    so that a reader (Envoy watching its directory) sees the old file or the new one, never a part.
  - Files are handled in the order given; the first one a validator rejects stops the run, and the files after it
    are not touched.
  - Owned by root. A missing directory is created with mode 0755.
author:
  - tproxy.envoy contributors (@tproxy)
options:
  files:
    description: The files, in the order they are written.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Where the file goes.
        type: path
        required: true
      content:
        description: The file's whole content.
        type: str
        required: true
      mode:
        description: Octal permission bits, as a string.
        type: str
        default: '0644'
      validate:
        description: A command that checks the new content before it replaces the file; C(%s) is the candidate file.
        type: str
      backup:
        description: Keep the replaced file beside it (RV(files[].backup_file)), for putting it back.
        type: bool
        default: false
  absent:
    description: Files, or directories with everything in them, that must not exist (deleted after O(files) are written).
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports the files that would change; writes nothing.
  diff_mode:
    support: full
    details: Each file that changes, before and after.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Ensure Envoy's bootstrap and its static equivalent are in place
  tproxy.envoy.config_files:
    files:
      - path: /etc/tproxy-envoy/envoy/envoy-static.yaml
        content: "{{ static | to_nice_yaml }}"
        validate: envoy --mode validate -c %s
      - path: /etc/tproxy-envoy/envoy/envoy.yaml
        content: "{{ lookup('ansible.builtin.template', 'envoy.yaml.j2') }}"
    absent: [/etc/logrotate.d/tproxy-envoy]
"""

RETURN = r"""
files:
  description: One entry per O(files) item, in order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file's path.
      type: str
    changed:
      description: Whether it was written (or would be).
      type: bool
    backup_file:
      description: Where the replaced file was kept (only when O(files[].backup) and an older file existed).
      type: str
removed:
  description: The O(absent) paths that existed and were deleted (or would be).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tproxy.envoy.plugins.module_utils import managed_files


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type='list', elements='dict', default=[], options=dict(
                path=dict(type='path', required=True),
                content=dict(type='str', required=True),
                mode=dict(type='str', default='0644'),
                validate=dict(type='str'),
                backup=dict(type='bool', default=False),
            )),
            absent=dict(type='list', elements='path', default=[]),
        ),
        supports_check_mode=True,
    )
    result = {'changed': False, 'files': [], 'removed': []}
    changes = managed_files.Changes(module, result)
    for spec in module.params['files']:
        result['files'].append(changes.write(spec['path'], spec['content'], int(spec['mode'], 8), spec['validate'], spec['backup']))
    result['removed'] = [path for path in module.params['absent'] if changes.remove(path)]
    changes.exit()


if __name__ == '__main__':
    main()
