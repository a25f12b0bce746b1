"""ipv4_address, ipv4_network, ipv6_address, ipv6_network and has_address."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.test.has_address import has_address
from ansible_collections.tproxy.envoy.plugins.test.ipv4_address import ipv4_address, ipv4_network, ipv6_address, ipv6_network


@pytest.mark.parametrize("value", ["2001:db8::100", "::1", "::", "2001:db8:0:1::1"])
def test_ipv6_addresses_as_ip_prints_them(value):
    assert ipv6_address(value) and not ipv4_address(value)


# Not as ip and ip6tables print them (the live state would never match), a prefix, or not IPv6.
@pytest.mark.parametrize("value", ["2001:DB8::100", "2001:db8:0::100", "2001:0db8::1", "2001:db8::/32", "192.0.2.1",
                                   "router", None, 6])
def test_non_canonical_or_other_ipv6_addresses_are_refused(value):
    assert not ipv6_address(value)


@pytest.mark.parametrize("value, ok", [("2001:db8::/32", True), ("2001:db8::10/128", True), ("::/0", True),
                                       ("2001:db8::1/32", False), ("2001:DB8::/32", False), ("2001:db8::1", False),
                                       ("192.0.2.0/24", False)])
def test_ipv6_networks(value, ok):
    assert ipv6_network(value) is ok


def test_the_ipv4_tests_take_no_ipv6():
    assert ipv4_network("192.0.2.0/24") and not ipv4_network("2001:db8::/32") and not ipv4_address("::1")


HOSTVARS = {"router": {"ansible_host": "192.0.2.100", "tproxy_ipv6_address": "2001:db8::100"},
            "web": {"ansible_host": "192.0.2.180", "tproxy_ipv6_address": "2001:db8::180"},
            "old": {"ansible_host": "192.0.2.20"}}


@pytest.mark.parametrize("pair, also, ok", [
    (["router", "ipv6"], [], True),
    (["old", "ipv6"], [], False),
    (["old", "ipv4"], [], True),
    (["web", "ipv6"], ["router"], True),
    (["web", "ipv6"], ["router", "old"], False),
    (["web", "ipv4"], ["old"], True),
])
def test_has_address_needs_the_host_and_every_other_one_to_have_the_family(pair, also, ok):
    assert has_address(pair, HOSTVARS, also) is ok


@pytest.mark.parametrize("pair", ["router", ["router"], None])
def test_has_address_refuses_what_is_not_a_pair(pair):
    with pytest.raises(AnsibleFilterError, match="host, family"):
        has_address(pair, HOSTVARS)


def test_has_address_refuses_an_unknown_family():
    with pytest.raises(AnsibleFilterError, match="family"):
        has_address(["router", "inet"], HOSTVARS)
