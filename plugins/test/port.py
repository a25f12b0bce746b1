# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests for TCP/UDP ports and lists of distinct ports.

Two tests live here, so each is documented in its own sidecar file (port.yml,
port_list.yml), as for ipv4_address.py.
"""

from __future__ import annotations

from ansible_collections.tproxy.envoy.plugins.module_utils.ports import port_number


def port(value):
    """True when ``value`` is one port from 1 to 65535."""
    return port_number(value) is not None


def port_list(value):
    """True when ``value`` is a list (possibly empty) of distinct ports from 1 to 65535."""
    if not isinstance(value, (list, tuple)):
        return False
    numbers = [port_number(item) for item in value]
    return None not in numbers and len(set(numbers)) == len(numbers)


class TestModule:
    """tproxy.envoy port tests."""

    def tests(self):
        return {"port": port, "port_list": port_list}
