# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the netstate role keeps a state set's files: the one place these paths are written."""

from __future__ import annotations

DOCUMENTATION = r"""
name: netstate_paths
author: tproxy.envoy contributors (@tproxy)
version_added: 0.2.0
short_description: Paths of the files the netstate role installs for a state set
description:
  - For a state set name (C(router), C(client)), where the internal netstate role installs its
    script (C(check), C(apply), C(list), C(list --json), C(remove)), the iptables rule file and
    the boot unit. The netstate role's defaults, the router role and checks read them from here.
options:
  _input:
    description: The state set's name (C(netstate_name)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Compare the router's live rules with what the router role installed
  ansible.builtin.command: "{{ ('router' | tproxy.envoy.netstate_paths).script }} check"
  changed_when: false
"""

RETURN = r"""
_value:
  description: The paths.
  type: dict
  contains:
    script:
      description: The state script.
      type: str
      sample: /usr/local/sbin/tproxy-envoy-router
    rules:
      description: The iptables-restore input of the own chains.
      type: str
      sample: /etc/tproxy-envoy/router.rules
    nft_rules:
      description: The C(nft -f) input of the own nftables tables.
      type: str
      sample: /etc/tproxy-envoy/router.nft
    unit:
      description: The systemd unit's name (in C(/etc/systemd/system)).
      type: str
      sample: tproxy-envoy-router.service
"""

from ansible.errors import AnsibleFilterError


def netstate_paths(name):
    """The script, rule file and unit name of the state set ``name``."""
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise AnsibleFilterError("netstate_paths: a state set name is a plain word, got %r" % (name,))
    return {
        "script": "/usr/local/sbin/tproxy-envoy-%s" % name,
        "rules": "/etc/tproxy-envoy/%s.rules" % name,
        "rules6": "/etc/tproxy-envoy/%s.rules6" % name,
        "nft_rules": "/etc/tproxy-envoy/%s.nft" % name,
        "unit": "tproxy-envoy-%s.service" % name,
    }


class FilterModule:
    """tproxy.envoy netstate filters."""

    def filters(self):
        return {"netstate_paths": netstate_paths}
