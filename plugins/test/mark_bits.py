# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test: do two firewall marks share no bit? (Jinja has no bitwise operators.)"""

from __future__ import annotations

DOCUMENTATION = r"""
name: mark_bits_disjoint
author: tproxy.envoy contributors (@tproxy)
version_added: 0.2.0
short_description: Do two firewall marks have no bit in common?
description:
  - True when the value and the other mark, both non-negative integers (strings of digits
    accepted, as C(-e name=2) gives), share no bit; false otherwise, and for anything that is not
    such an integer.
positional: other
options:
  _input:
    description: A firewall mark.
    type: raw
    required: true
  other:
    description: The mark it must not overlap.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Keep the upstream mark apart from the interception mark
  ansible.builtin.assert:
    that: router_preserve_client_address_mark is tproxy.envoy.mark_bits_disjoint(router_tproxy_mark)
"""

RETURN = r"""
_value:
  description: Whether the two marks share no bit.
  type: bool
"""


def _mark(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def mark_bits_disjoint(value, other):
    """True when ``value`` and ``other`` are marks with no bit in common."""
    first, second = _mark(value), _mark(other)
    return first is not None and second is not None and first & second == 0


class TestModule:
    """tproxy.envoy mark tests."""

    def tests(self):
        return {"mark_bits_disjoint": mark_bits_disjoint}
