"""The fleet in the topology model: router groups with a virtual address are VRRP instances (keepalived), each
router's with its priority and peers; an inconsistent fleet is refused naming the variable. router_fleet_link finds
the interface the virtual addresses move on and checks that they lie in its network."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.filter.router_fleet_link import router_fleet_link
from ansible_collections.tproxy.envoy.plugins.filter.topology import topology
from ansible_collections.tproxy.envoy.tests.unit.plugins.filter.test_topology import CLIENT, WEB, inventory

R1 = {"ansible_host": "192.0.2.101", "tproxy_ipv6_address": "2001:db8::101"}
R2 = {"ansible_host": "192.0.2.102", "tproxy_ipv6_address": "2001:db8::102"}
FLEET = {"router_virtual_address": "192.0.2.1", "router_virtual_address6": "2001:db8::1"}


def fleet(r1=None, r2=None, **parts):
    return inventory(routers={"r1": {**R1, **FLEET, **(r1 or {})}, "r2": {**R2, **FLEET, **(r2 or {})}}, **parts)


def test_one_group_of_all_routers_by_default_with_priorities_by_inventory_order():
    groups, hostvars = fleet()
    model = topology(groups, hostvars)
    assert model["router_groups"]["routers"]["vrrp"] == {"id": 51, "priorities": {"r1": 200, "r2": 190}}
    assert model["routers"]["r2"]["vrrp"] == [{
        "name": "routers", "virtual_address": "192.0.2.1", "virtual_address6": "2001:db8::1", "vrrp_id": 51,
        "priority": 190, "address": "192.0.2.102", "address6": "2001:db8::102", "peers": ["192.0.2.101"],
        "interface_id": None, "peer_interface_ids": []}]
    assert model["clients"]["client"]["routes"] == [{"dest": "192.0.2.180/32", "via": "192.0.2.1"},
                                                    {"dest": "2001:db8::180/128", "via": "2001:db8::1"}]


def test_an_explicit_priority_and_vrrp_id_win():
    groups, hostvars = fleet(r1={"router_vrrp_id": 7}, r2={"router_priority": 250, "router_vrrp_id": "7"})
    assert topology(groups, hostvars)["router_groups"]["routers"]["vrrp"] == {"id": 7, "priorities": {"r1": 200, "r2": 250}}
    assert topology(groups, hostvars)["router_groups"]["routers"]["first_choice"] == "r2"


def test_the_first_choice_is_the_highest_priority_then_inventory_order():
    groups, hostvars = fleet()
    assert topology(groups, hostvars)["router_groups"]["routers"]["first_choice"] == "r1"
    groups, hostvars = fleet(r1={"router_priority": 100}, r2={"router_priority": 100})
    assert topology(groups, hostvars)["router_groups"]["routers"]["first_choice"] == "r1"
    groups, hostvars = inventory(routers={"r1": dict(R1), "r2": dict(R2)})
    assert topology(groups, hostvars)["router_groups"]["routers"]["first_choice"] == "r1"


def test_routers_without_a_virtual_address_have_no_vrrp_instance():
    groups, hostvars = inventory(routers={"r1": dict(R1), "r2": dict(R2)})
    model = topology(groups, hostvars)
    assert model["router_groups"]["routers"]["vrrp"] is None
    assert model["routers"]["r1"]["vrrp"] == [] == model["routers"]["r2"]["vrrp"]


def test_active_active_two_groups_with_their_priorities_reversed_each_serving_its_clients():
    a = {"name": "a", "virtual_address": "192.0.2.1", "virtual_address6": "2001:db8::1", "vrrp_id": 51}
    b = {"name": "b", "virtual_address": "192.0.2.2", "virtual_address6": "2001:db8::2", "vrrp_id": 52}
    routers = {"r1": dict(R1, router_groups=[dict(a, priority=200), dict(b, priority=100)]),
               "r2": dict(R2, router_groups=[dict(a, priority=100), dict(b, priority=200)])}
    clients = {"c1": dict(CLIENT, tproxy_router_group="a"),
               "c2": {"ansible_host": "192.0.2.20", "tproxy_router_group": "b"}}
    groups, hostvars = inventory(routers=routers, clients=clients)
    model = topology(groups, hostvars)
    assert [(i["name"], i["priority"], i["peers"]) for i in model["routers"]["r2"]["vrrp"]] == [
        ("a", 100, ["192.0.2.101"]), ("b", 200, ["192.0.2.101"])]
    assert model["clients"]["c1"]["routes"][0] == {"dest": "192.0.2.180/32", "via": "192.0.2.1"}
    assert model["clients"]["c2"]["routes"] == [{"dest": "192.0.2.180/32", "via": "192.0.2.2"}]
    # Each router accepts both groups' clients: it stands by for the other's.
    assert model["routers"]["r1"]["client_networks"] == ["192.0.2.10/32", "192.0.2.20/32", "2001:db8::10/128"]
    assert model["routers"]["r1"]["groups"] == ["a", "b"] and model["routers"]["r1"]["active"]


def test_on_ec2_each_instance_names_its_primary_interface_and_its_peers():
    groups, hostvars = fleet()
    hostvars["r1"]["network_interfaces"] = [{"network_interface_id": "eni-b", "attachment": {"device_index": 1}},
                                            {"network_interface_id": "eni-a", "attachment": {"device_index": 0}}]
    hostvars["r2"]["network_interfaces"] = [{"network_interface_id": "eni-c", "attachment": {"device_index": 0}}]
    instance = topology(groups, hostvars, "r2")["router"]["vrrp"][0]
    assert (instance["interface_id"], instance["peer_interface_ids"]) == ("eni-c", ["eni-a"])


ENTRY = {"name": "a", "virtual_address": "192.0.2.1", "vrrp_id": 51}


@pytest.mark.parametrize("r1, r2, words", [
    ({"router_group": "other", "router_virtual_address": "192.0.2.2", "router_virtual_address6": "2001:db8::2"}, {},
     ["router groups other and routers both have the VRRP id 51", "router_vrrp_id"]),
    ({}, {"router_vrrp_id": 52}, ["router group routers", "must agree on router_vrrp_id", "r1 has 51, r2 has 52"]),
    ({"router_vrrp_id": 256}, {}, ["router r1: router_vrrp_id must be from 1 to 255", "256"]),
    ({"router_priority": 255}, {}, ["router r1: router_priority must be from 0 to 254", "address owner"]),
    ({"router_virtual_address": "192.0.2.180"}, {"router_virtual_address": "192.0.2.180"},
     ["router group routers", "virtual address 192.0.2.180 is already the address of host web"]),
    ({"router_groups": [dict(ENTRY, name="a b")]}, {}, ["router r1: router_groups[0].name must be 1 to 32 letters", "'a b'"]),
    ({"router_groups": [{"name": "a", "virtual_address": "192.0.2.1"}]}, {},
     ["router r1: router_groups[0] must be a dict with name, virtual_address, vrrp_id"]),
    ({"router_groups": [dict(ENTRY, vip=1)]}, {}, ["router_groups[0] must be a dict"]),
    ({"router_groups": [dict(ENTRY, vrrp_id=0)]}, {}, ["router r1: router_groups[0].vrrp_id must be from 1 to 255"]),
    ({"router_groups": [dict(ENTRY), dict(ENTRY)]}, {}, ["router r1: router_groups names group a twice"]),
    ({"router_groups": [dict(ENTRY, virtual_address="192.0.2.1/32")]}, {},
     ["router r1: router_groups[0].virtual_address must be one IPv4 address"]),
    ({"router_groups": "a"}, {}, ["router r1: router_groups must be a list"]),
    ({"router_groups": [dict(ENTRY, virtual_address6="2001:db8::1")]},
     {"router_groups": [dict(ENTRY, virtual_address6="2001:db8::1")], "tproxy_ipv6_address": None},
     ["router r2: router group a has the virtual IPv6 address 2001:db8::1", "tproxy_ipv6_address"]),
])
def test_an_inconsistent_fleet_is_refused_naming_the_variable(r1, r2, words):
    groups, hostvars = fleet(r1=r1, r2=r2, clients={"client": CLIENT}, webservers={"web": WEB})
    with pytest.raises(AnsibleFilterError) as error:
        topology(groups, hostvars)
    for word in words:
        assert word in str(error.value), str(error.value)


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
