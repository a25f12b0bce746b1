# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that build host routes towards a gateway, and check routes given by hand.

This file holds two filters, so the second (route_problems) is documented in its own
sidecar file, route_problems.yml.
"""

from __future__ import annotations

import ipaddress

DOCUMENTATION = r"""
name: routes_via
author: tproxy.envoy contributors (@tproxy)
version_added: 0.1.0
short_description: Host routes to some addresses through one gateway
description:
  - "Turns a list of addresses into C(client_routes) entries, C({dest: ADDRESS/32, via: GATEWAY}),
    C(ADDRESS/128) for an IPv6 address."
  - An address that already has a prefix length is kept as it is.
positional: via
options:
  _input:
    description: Destination addresses or networks.
    type: list
    elements: str
    required: true
  via:
    description: The gateway. With none given (no router in the inventory) the result is empty.
    type: str
"""

EXAMPLES = r"""
- name: Route every web server through the first router
  ansible.builtin.set_fact:
    client_routes: >-
      {{ groups['webservers'] | tproxy.envoy.topology_addresses(hostvars)
         | tproxy.envoy.routes_via((groups['routers'] | tproxy.envoy.topology_addresses(hostvars))[0]) }}
"""

RETURN = r"""
_value:
  description: Routes, each with C(dest) and C(via).
  type: list
  elements: dict
"""


def routes_via(dests, via=None):
    """Host routes (``/32`` or ``/128`` unless a prefix is given) to ``dests`` through ``via``."""
    if not via:
        return []
    return [{"dest": d if "/" in str(d) else "%s/%d" % (d, 128 if ":" in str(d) else 32), "via": str(via)} for d in dests]


def _canonical(value, parse):
    """``value`` parsed by ``parse`` when it is written as ip prints it (IPv6 compressed), else None."""
    try:
        parsed = parse(str(value))
    except ValueError:
        return None
    return parsed if parsed.version == 4 or str(parsed) == value else None


def route_problems(routes):
    """One sentence per route that is not {dest: network, via: address of the network's family}."""
    problems = []
    for index, route in enumerate(routes or []):
        where = "route %d (%r)" % (index + 1, route)
        if not isinstance(route, dict) or "dest" not in route or "via" not in route:
            problems.append("%s must be a dict with dest and via" % where)
            continue
        dest = _canonical(route["dest"], lambda v: ipaddress.ip_network(v, strict=True)) if "/" in str(route["dest"]) else None
        via = _canonical(route["via"], ipaddress.ip_address) if "/" not in str(route["via"]) else None
        if dest is None:
            problems.append("%s: dest must be a network in CIDR form without host bits (IPv6 compressed)" % where)
        elif via is None:
            problems.append("%s: via must be one address (IPv6 compressed)" % where)
        elif dest.version != via.version:
            problems.append("%s: dest and via must be of the same family" % where)
    return problems


class FilterModule:
    """tproxy.envoy route filters."""

    def filters(self):
        return {"routes_via": routes_via, "route_problems": route_problems}
