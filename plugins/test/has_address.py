# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test: does a host have a topology address of a family (and do some others too)?"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tproxy.envoy.plugins.filter.topology_addresses import topology_addresses

DOCUMENTATION = r"""
name: has_address
author: tproxy.envoy contributors (@tproxy)
version_added: 0.2.0
short_description: Does a host have a topology address of a family?
description:
  - The value is a pair C([host, family]), family C(ipv4) or C(ipv6), as C(product) gives it.
  - True when the host has a topology address of that family (see the
    P(tproxy.envoy.topology_addresses#filter) filter), and so does each host in O(also). Every host
    has an IPv4 one.
positional: hostvars, also
options:
  _input:
    description: A C([host, family]) pair.
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  also:
    description: Hosts that must have an address of the family too.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Ask from each router in each family it shares with this host
  ansible.builtin.debug:
    msg: "{{ groups['routers'] | product(['ipv4', 'ipv6']) | select('tproxy.envoy.has_address', hostvars) | list }}"
"""

RETURN = r"""
_value:
  description: Whether the host, and each host in O(also), has a topology address of the family.
  type: bool
"""


def has_address(pair, hostvars, also=()):
    """True when ``pair`` = [host, family] and every host in ``also`` have an address of that family."""
    try:
        host, family = pair
    except (TypeError, ValueError):
        raise AnsibleFilterError("has_address: expected a [host, family] pair, got %r" % (pair,))
    hosts = [host] + list(also)
    return len(topology_addresses(hosts, hostvars, family=family)) == len(hosts)


class TestModule:
    """tproxy.envoy topology tests."""

    def tests(self):
        return {"has_address": has_address}
