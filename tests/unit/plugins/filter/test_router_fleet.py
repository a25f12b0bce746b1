"""router_fleet groups the routers by router_group and names every inconsistency; router_fleet_link finds
the interface the virtual addresses move on and checks that they lie in its network."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.tproxy.envoy.plugins.filter.router_fleet import router_fleet, router_fleet_link

DEFAULTS = {"router_group": "routers", "router_virtual_address": "", "router_virtual_address6": "",
            "router_vrrp_id": 51, "router_priority": 0}
ROUTERS = {
    "r1": {"ansible_host": "192.0.2.101", "tproxy_ipv6_address": "2001:db8::101"},
    "r2": {"ansible_host": "192.0.2.102", "tproxy_ipv6_address": "2001:db8::102"},
}
FLEET = {"router_virtual_address": "192.0.2.1", "router_virtual_address6": "2001:db8::1"}


def hostvars(**extra):
    return {host: {**facts, **FLEET, **extra.get(host, {})} for host, facts in ROUTERS.items()}


def test_one_group_of_all_routers_by_default_with_priorities_by_inventory_order():
    fleet = router_fleet(["r1", "r2"], hostvars(), DEFAULTS)
    assert fleet["problems"] == []
    assert fleet["groups"] == {"routers": {
        "virtual_address": "192.0.2.1", "virtual_address6": "2001:db8::1", "vrrp_id": 51,
        "members": [{"host": "r1", "priority": 200, "address": "192.0.2.101", "address6": "2001:db8::101"},
                    {"host": "r2", "priority": 190, "address": "192.0.2.102", "address6": "2001:db8::102"}]}}
    assert fleet["instances"]["r2"] == [{"name": "routers", "virtual_address": "192.0.2.1", "virtual_address6": "2001:db8::1",
                                         "vrrp_id": 51, "priority": 190, "address": "192.0.2.102",
                                         "address6": "2001:db8::102", "peers": ["192.0.2.101"],
                                         "interface_id": None, "peer_interface_ids": []}]


def test_an_explicit_priority_wins():
    fleet = router_fleet(["r1", "r2"], hostvars(r2={"router_priority": 250}), DEFAULTS)
    assert [m["priority"] for m in fleet["groups"]["routers"]["members"]] == [200, 250]


def test_routers_without_a_virtual_address_are_in_no_group():
    assert router_fleet(["r1", "r2"], {h: dict(f) for h, f in ROUTERS.items()}, DEFAULTS) == {
        "groups": {}, "instances": {"r1": [], "r2": []}, "problems": []}


def test_a_bad_group_name_is_named():
    problems = router_fleet(["r1"], hostvars(r1={"router_group": "a b"}), DEFAULTS)["problems"]
    assert problems == ["r1: router_group must be 1 to 32 letters, digits, '_' or '-' (starting with a letter or digit), "
                        "got 'a b'"]


def test_a_duplicate_vrrp_id_across_groups_is_refused():
    vars_ = hostvars(r2={"router_group": "other", "router_virtual_address": "192.0.2.2", "router_virtual_address6": ""})
    problems = router_fleet(["r1", "r2"], vars_, DEFAULTS)["problems"]
    assert problems == ["router_vrrp_id 51 is used by router_group routers and other: each group needs its own "
                        "(VRRP tells groups on one network apart by it)"]


def test_members_of_a_group_must_agree():
    problems = router_fleet(["r1", "r2"], hostvars(r2={"router_virtual_address": "192.0.2.3"}), DEFAULTS)["problems"]
    assert problems == ["r1 and r2 are both in router_group routers but differ in router_virtual_address "
                        "('192.0.2.1', '192.0.2.3'): a group has one"]


@pytest.mark.parametrize("extra, word", [
    ({"router_virtual_address": "192.0.2.1/24"}, "router_virtual_address must be an IPv4 address"),
    ({"router_virtual_address6": "2001:DB8::1"}, "router_virtual_address6 must be an IPv6 address in compressed form"),
    ({"router_vrrp_id": 256}, "router_vrrp_id must be from 1 to 255"),
    ({"router_priority": 255}, "router_priority must be from 1 to 254"),
])
def test_bad_values_are_named(extra, word):
    problems = router_fleet(["r1"], hostvars(r1=extra), DEFAULTS)["problems"]
    assert len(problems) == 1 and word in problems[0]


def test_a_virtual_address_may_not_be_a_hosts_address():
    vars_ = hostvars()
    vars_["web"] = {"ansible_host": "192.0.2.1"}
    problems = router_fleet(["r1", "r2"], vars_, dict(DEFAULTS, hosts=["r1", "r2", "web"]))["problems"]
    assert problems == ["router_virtual_address 192.0.2.1 of router_group routers is the address of host web"]


def test_an_ipv6_virtual_address_needs_an_ipv6_router():
    vars_ = hostvars()
    del vars_["r1"]["tproxy_ipv6_address"]
    problems = router_fleet(["r1"], vars_, DEFAULTS)["problems"]
    assert problems == ["r1: router_virtual_address6 2001:db8::1 needs an IPv6 address on the router (tproxy_ipv6_address)"]


def test_defaults_must_be_a_dict():
    with pytest.raises(AnsibleFilterError):
        router_fleet(["r1"], hostvars(), None)


LINKS = [{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
         {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.101", "prefixlen": 24},
                                          {"family": "inet6", "local": "2001:db8::101", "prefixlen": 64}]}]


def test_the_link_is_the_one_with_the_routers_own_addresses():
    assert router_fleet_link(LINKS, "192.0.2.101", "2001:db8::101", ["192.0.2.1"], ["2001:db8::1"]) == {
        "interface": "eth0", "problems": []}


def test_a_virtual_address_outside_the_network_is_named():
    result = router_fleet_link(LINKS, "192.0.2.101", "2001:db8::101", ["198.51.100.1"], ["2001:db8:1::1"])
    assert result["problems"] == [
        "virtual address 198.51.100.1 must lie in the network of the router's own address 192.0.2.101 "
        "(192.0.2.0/24 on eth0): VRRP moves it on that network",
        "virtual IPv6 address 2001:db8:1::1 must lie in the network of the router's own address 2001:db8::101 "
        "(2001:db8::/64 on eth0): VRRP moves it on that network"]


def test_an_own_address_on_no_interface_is_named():
    result = router_fleet_link(LINKS, "192.0.2.109", None, ["192.0.2.1"])
    assert result == {"interface": None, "problems": [
        "virtual address 192.0.2.1: the router's own address 192.0.2.109 is on none of its interfaces"]}


def test_active_active_two_groups_with_their_priorities_reversed():
    groups = {"r1": [{"name": "a", "virtual_address": "192.0.2.1", "vrrp_id": 51, "priority": 200},
                     {"name": "b", "virtual_address": "192.0.2.2", "vrrp_id": 52, "priority": 100}],
              "r2": [{"name": "a", "virtual_address": "192.0.2.1", "vrrp_id": 51, "priority": 100},
                     {"name": "b", "virtual_address": "192.0.2.2", "vrrp_id": 52, "priority": 200}]}
    vars_ = {host: dict(facts, router_groups=groups[host]) for host, facts in ROUTERS.items()}
    fleet = router_fleet(["r1", "r2"], vars_, DEFAULTS)
    assert fleet["problems"] == []
    assert [(i["name"], i["priority"], i["peers"]) for i in fleet["instances"]["r2"]] == [
        ("a", 100, ["192.0.2.101"]), ("b", 200, ["192.0.2.101"])]


def test_the_current_hosts_router_groups_may_come_from_the_defaults():
    mine = [{"name": "a", "virtual_address": "192.0.2.1", "vrrp_id": 51}]
    fleet = router_fleet(["r1"], {"r1": dict(ROUTERS["r1"])}, dict(DEFAULTS, host="r1", router_groups=mine))
    assert [i["name"] for i in fleet["instances"]["r1"]] == ["a"]


@pytest.mark.parametrize("entry, word", [
    ({"name": "a", "virtual_address": "192.0.2.1"}, "router_groups[0] must be a dict with name, virtual_address, vrrp_id"),
    ({"name": "a", "virtual_address": "192.0.2.1", "vrrp_id": 1, "vip": 1}, "router_groups[0] must be a dict"),
    ({"name": "a", "virtual_address": "192.0.2.1", "vrrp_id": 0}, "router_groups[0].vrrp_id must be from 1 to 255"),
])
def test_bad_router_groups_entries_are_named(entry, word):
    vars_ = {"r1": dict(ROUTERS["r1"], router_groups=[entry])}
    problems = router_fleet(["r1"], vars_, DEFAULTS)["problems"]
    assert len(problems) == 1 and word in problems[0], problems


def test_on_ec2_each_instance_names_its_primary_interface_and_its_peers():
    vars_ = hostvars()
    vars_["r1"]["network_interfaces"] = [{"network_interface_id": "eni-b", "attachment": {"device_index": 1}},
                                         {"network_interface_id": "eni-a", "attachment": {"device_index": 0}}]
    vars_["r2"]["network_interfaces"] = [{"network_interface_id": "eni-c", "attachment": {"device_index": 0}}]
    instance = router_fleet(["r1", "r2"], vars_, DEFAULTS)["instances"]["r2"][0]
    assert (instance["interface_id"], instance["peer_interface_ids"]) == ("eni-c", ["eni-a"])
