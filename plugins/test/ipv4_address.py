# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests for IPv4 addresses and networks (stdlib ipaddress, no extra collection).

This file holds two tests, so each is documented in its own sidecar file
(ipv4_address.yml, ipv4_network.yml): a DOCUMENTATION string here would be
shown by ansible-doc for both of them.
"""

from __future__ import annotations

import ipaddress


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
