# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests for IPv4 addresses and networks (stdlib ipaddress, no extra collection)."""

from __future__ import annotations

import ipaddress

DOCUMENTATION = r"""
name: ipv4_address
author: tproxy.envoy contributors (@tproxy)
version_added: 0.1.0
short_description: Is the value one IPv4 address (no prefix length)?
description:
  - True for a dotted-quad IPv4 address such as C(192.0.2.10); false for anything else,
    including networks, host names and non-strings.
options:
  _input:
    description: The value to test.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse a gateway that is not an address
  ansible.builtin.assert:
    that: item.via is tproxy.envoy.ipv4_address
  loop: "{{ client_routes }}"
"""

RETURN = r"""
_value:
  description: Whether the value is an IPv4 address.
  type: bool
"""


def ipv4_address(value):
    """True when ``value`` is a single IPv4 address written without a prefix."""
    if not isinstance(value, str) or "/" in value:
        return False
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def ipv4_network(value):
    """True when ``value`` is an IPv4 network written as ADDRESS/PREFIX with no host bits set."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return False
    return True


class TestModule:
    """tproxy.envoy address tests."""

    def tests(self):
        return {"ipv4_address": ipv4_address, "ipv4_network": ipv4_network}
