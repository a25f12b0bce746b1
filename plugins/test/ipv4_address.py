# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests for IPv4 and IPv6 addresses and networks (stdlib ipaddress, no extra collection).

This file holds four tests, so each is documented in its own sidecar file
(ipv4_address.yml, ipv4_network.yml, ipv6_address.yml, ipv6_network.yml): a
DOCUMENTATION string here would be shown by ansible-doc for all of them.
"""

from __future__ import annotations

import ipaddress


def _address(value, kind):
    """The address ``value`` (no prefix) of ``kind``, or None."""
    if not isinstance(value, str) or "/" in value:
        return None
    try:
        return kind(value)
    except ValueError:
        return None


def _network(value, kind):
    """The network ``value`` (ADDRESS/PREFIX, no host bits) of ``kind``, or None."""
    if not isinstance(value, str) or "/" not in value:
        return None
    try:
        return kind(value, strict=True)
    except ValueError:
        return None


def ipv4_address(value):
    """True when ``value`` is a single IPv4 address written without a prefix."""
    return _address(value, ipaddress.IPv4Address) is not None


def ipv4_network(value):
    """True when ``value`` is an IPv4 network written as ADDRESS/PREFIX with no host bits set."""
    return _network(value, ipaddress.IPv4Network) is not None


def ipv6_address(value):
    """True when ``value`` is a single IPv6 address in its compressed form (as ip and ip6tables print it)."""
    address = _address(value, ipaddress.IPv6Address)
    return address is not None and str(address) == value


def ipv6_network(value):
    """True when ``value`` is an IPv6 network, ADDRESS/PREFIX with no host bits set, in compressed form."""
    network = _network(value, ipaddress.IPv6Network)
    return network is not None and str(network) == value


class TestModule:
    """tproxy.envoy address tests."""

    def tests(self):
        return {"ipv4_address": ipv4_address, "ipv4_network": ipv4_network,
                "ipv6_address": ipv6_address, "ipv6_network": ipv6_network}
