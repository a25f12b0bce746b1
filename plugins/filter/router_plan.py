# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router role's plan (plugins/plugin_utils/router_model.py), as a filter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: router_plan
author: tproxy.envoy contributors (@tproxy)
version_added: 0.1.0
short_description: Everything the router role writes, computed once from its settings
description:
  - Turns the router role's settings (every C(router_*) variable) and, once preflight ran, the host
    probe's result into the whole plan as plain data - the ports by mode, the host's firewall backend,
    families and kernel check, the kernel settings, the netstate role's rule set, Envoy's listeners,
    clusters, bootstrap, command line and the files the role writes. Tasks and templates only write
    parts of it out.
  - A setting that is wrong gives C(problems), one sentence naming the variable, and nothing else.
options:
  _input:
    description: The router's settings, a dict of every C(router_*) variable (other keys are ignored).
    type: dict
    required: true
  hostname:
    description: The router's inventory name (Envoy's node id).
    type: str
    required: true
  probe:
    description: What M(tproxy.envoy.host_probe) returned in preflight (C(tools), C(links), C(tproxy_kernel)); none for a render.
    type: dict
  managed:
    description: The comment that heads the rule files and Envoy's bootstrap (the role's C(ansible_managed), commented).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Plan the router from its settings
  ansible.builtin.set_fact:
    router_plan: "{{ dict(names | zip(query('ansible.builtin.vars', *names))) | tproxy.envoy.router_plan(inventory_hostname) }}"
  vars:
    names: "{{ query('ansible.builtin.varnames', '^router_') }}"
"""

RETURN = r"""
_value:
  description: >-
    C(problems) (empty when the settings are valid), C(ports), C(host), C(sysctls), C(sysctls_base),
    C(netstate), C(envoy); see plugins/plugin_utils/router_model.py.
  type: dict
"""

from ansible_collections.tproxy.envoy.plugins.plugin_utils.router_model import router_plan


class FilterModule:
    def filters(self):
        return {"router_plan": router_plan}
