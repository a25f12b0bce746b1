# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that read the topology out of the inventory."""

from __future__ import annotations

DOCUMENTATION = r"""
name: topology_addresses
author: tproxy.envoy contributors (@tproxy)
version_added: 0.1.0
short_description: The addresses hosts use to reach each other
description:
  - For each inventory host name, the address it has inside the topology, C(private_ip_address)
    (set by the aws_ec2 inventory) or else C(ansible_host), or else the host name itself.
  - Routes and firewall rules are built from these, never from hard-coded addresses.
positional: hostvars
options:
  _input:
    description: Inventory host names.
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Show where the web servers are
  ansible.builtin.debug:
    msg: "{{ groups['webservers'] | tproxy.envoy.topology_addresses(hostvars) }}"
"""

RETURN = r"""
_value:
  description: One address per host, in the order given.
  type: list
  elements: str
"""


def topology_address(hostvars, host):
    """The topology address of one inventory host."""
    facts = hostvars.get(host, {}) if hasattr(hostvars, "get") else hostvars[host]
    for key in ("private_ip_address", "ansible_host"):
        value = facts.get(key)
        if value:
            return str(value)
    return str(host)


def topology_addresses(hosts, hostvars):
    """The topology address of each host in ``hosts``."""
    return [topology_address(hostvars, host) for host in hosts]


class FilterModule:
    """tproxy.envoy topology filters."""

    def filters(self):
        return {"topology_addresses": topology_addresses}
