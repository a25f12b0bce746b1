# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that builds host routes towards a gateway."""

from __future__ import annotations

DOCUMENTATION = r"""
name: routes_via
author: tproxy.envoy contributors (@tproxy)
version_added: 0.1.0
short_description: Host routes to some addresses through one gateway
description:
  - "Turns a list of addresses into C(client_routes) entries, C({dest: ADDRESS/32, via: GATEWAY})."
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
    """Host routes (``/32`` unless a prefix is given) to ``dests`` through ``via``."""
    if not via:
        return []
    return [{"dest": d if "/" in str(d) else "%s/32" % d, "via": str(via)} for d in dests]


class FilterModule:
    """tproxy.envoy route filters."""

    def filters(self):
        return {"routes_via": routes_via}
