# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that read the topology out of the inventory."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tproxy.envoy.plugins.module_utils.topology import FAMILIES, topology_address, topology_address6

DOCUMENTATION = r"""
name: topology_addresses
author: tproxy.envoy contributors (@tproxy)
version_added: 0.1.0
short_description: The addresses hosts use to reach each other
description:
  - For each inventory host name, the address it has inside the topology.
  - "With O(family=ipv4): C(private_ip_address) (set by the aws_ec2 inventory) or else C(ansible_host),
    or else the host name itself."
  - "With O(family=ipv6): C(tproxy_ipv6_address) or else the first IPv6 address the aws_ec2 inventory
    gives the host (C(network_interfaces[].ipv6_addresses[].ipv6_address), the primary interface first).
    A host with neither has no IPv6 topology address and is left out of the result."
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
  family:
    description: Which address family's topology address to give.
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
"""

EXAMPLES = r"""
- name: Show where the web servers are
  ansible.builtin.debug:
    msg: "{{ groups['webservers'] | tproxy.envoy.topology_addresses(hostvars) }}"

- name: Show the web servers' IPv6 addresses (IPv4-only web servers are left out)
  ansible.builtin.debug:
    msg: "{{ groups['webservers'] | tproxy.envoy.topology_addresses(hostvars, family='ipv6') }}"
"""

RETURN = r"""
_value:
  description:
    - One address per host, in the order given.
    - With O(family=ipv6), only the hosts that have an IPv6 address, in the order given.
  type: list
  elements: str
"""


def topology_addresses(hosts, hostvars, family="ipv4"):
    """The topology address of each host in ``hosts`` (for ipv6, of each host that has one)."""
    if family not in FAMILIES:
        raise AnsibleFilterError("topology_addresses: family must be ipv4 or ipv6, not %r" % (family,))
    if family == "ipv4":
        return [topology_address(hostvars, host) for host in hosts]
    addresses = (topology_address6(hostvars, host) for host in hosts)
    return [address for address in addresses if address]


class FilterModule:
    """tproxy.envoy topology filters."""

    def filters(self):
        return {"topology_addresses": topology_addresses}
