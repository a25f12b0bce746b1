"""topology_addresses: each host's IPv4 topology address, and with family=ipv6 its IPv6 one (if any)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.filter.topology_addresses import FilterModule, topology_addresses

LAB = {
    "client": {"ansible_host": "192.0.2.10", "tproxy_ipv6_address": "2001:db8::10"},
    "router": {"ansible_host": "192.0.2.100", "tproxy_ipv6_address": "2001:db8::100"},
    "web": {"ansible_host": "192.0.2.180", "tproxy_ipv6_address": "2001:db8::180"},
}


def ec2(private, interfaces):
    """An aws_ec2 inventory host's variables (the plugin's snake_case of DescribeInstances)."""
    return {"ansible_host": "203.0.113.9", "private_ip_address": private, "network_interfaces": interfaces}


def eni(index, *ipv6):
    return {"attachment": {"device_index": index}, "private_ip_address": "198.51.100.%d" % (index + 1),
            "ipv6_addresses": [{"ipv6_address": a, "is_primary_ipv6": False} for a in ipv6]}


def test_ipv4_is_unchanged_and_the_default():
    hostvars = dict(LAB, aws=ec2("198.51.100.1", [eni(0, "2001:db8:1::1")]), bare={})
    hosts = ["web", "aws", "bare", "client"]
    expected = ["192.0.2.180", "198.51.100.1", "bare", "192.0.2.10"]
    assert topology_addresses(hosts, hostvars) == expected
    assert topology_addresses(hosts, hostvars, family="ipv4") == expected


def test_ipv6_from_the_inventory_variable():
    assert topology_addresses(["web", "router"], LAB, family="ipv6") == ["2001:db8::180", "2001:db8::100"]


def test_ipv6_from_the_aws_ec2_inventory_primary_interface_first():
    hostvars = {
        "one": ec2("198.51.100.1", [eni(0, "2001:db8:1::1", "2001:db8:1::2")]),
        # DescribeInstances need not list the primary interface first.
        "two": ec2("198.51.100.2", [eni(1, "2001:db8:2::1"), eni(0), eni(2, "2001:db8:2::2")]),
        "three": ec2("198.51.100.3", [eni(1, "2001:db8:3::1"), eni(0, "2001:db8:3::2")]),
        # The inventory variable wins over what EC2 says.
        "pinned": dict(ec2("198.51.100.4", [eni(0, "2001:db8:4::1")]), tproxy_ipv6_address="2001:db8:4::99"),
    }
    assert topology_addresses(["one", "two", "three", "pinned"], hostvars, family="ipv6") == [
        "2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::2", "2001:db8:4::99"]


def test_hosts_without_an_ipv6_address_are_left_out():
    hostvars = dict(LAB, v4only={"ansible_host": "192.0.2.20"}, empty={"tproxy_ipv6_address": ""},
                    aws=ec2("198.51.100.1", [eni(0), {"ipv6_addresses": None}, "junk"]), unknown={})
    hosts = ["v4only", "client", "empty", "aws", "unknown", "web"]
    assert topology_addresses(hosts, hostvars, family="ipv6") == ["2001:db8::10", "2001:db8::180"]
    assert topology_addresses(["v4only"], hostvars, family="ipv6") == []
    # The IPv4 view of the same hosts still has every one of them.
    assert len(topology_addresses(hosts, hostvars)) == len(hosts)


@pytest.mark.parametrize("family", ["inet6", "IPv6", "", None, 6])
def test_an_unknown_family_is_refused(family):
    with pytest.raises(AnsibleFilterError, match="family must be ipv4 or ipv6"):
        topology_addresses(["web"], LAB, family=family)


def test_the_filter_is_registered():
    assert FilterModule().filters()["topology_addresses"] is topology_addresses
