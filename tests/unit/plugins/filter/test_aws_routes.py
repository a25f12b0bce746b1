"""aws_return_routes (the VPC route each client address needs, as AWS allows it) and aws_route_plan
(what to change in the route table: only routes whose destination and target both match)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.filter.aws_routes import FilterModule
from ansible_collections.tproxy.envoy.plugins.filter.aws_routes import aws_return_routes
from ansible_collections.tproxy.envoy.plugins.filter.aws_routes import aws_route_plan

ENI = "eni-0router"


def ipv6_blocks(*cidrs, state="associated"):
    return [{"ipv6_cidr_block": c, "ipv6_cidr_block_state": {"state": state}} for c in cidrs]


# amazon.aws.ec2_vpc_net's and ec2_vpc_subnet_info's snake_case shapes.
VPC = {
    "id": "vpc-1",
    "cidr_block": "198.51.100.0/24",
    "cidr_block_association_set": [{"cidr_block": "198.51.100.0/24", "cidr_block_state": {"state": "associated"}}],
}
CLIENTS = {"subnet_id": "subnet-clients", "cidr_block": "198.51.100.0/25"}
WEB = {"subnet_id": "subnet-web", "cidr_block": "198.51.100.128/25"}


def routes_for(addresses, vpc=None, subnets=(CLIENTS, WEB), web="subnet-web"):
    return {r["address"]: r["dest"] for r in aws_return_routes(addresses, vpc or VPC, list(subnets), web)}


def test_a_client_in_another_subnet_gets_that_whole_subnet():
    # AWS: a route more specific than the local route must match a whole subnet's CIDR block.
    [entry] = aws_return_routes(["198.51.100.10"], VPC, [CLIENTS, WEB], "subnet-web")
    assert entry["dest"] == "198.51.100.0/25"
    assert entry["family"] == "ipv4"
    assert "whole subnet" in entry["reason"] and "subnet-clients" in entry["reason"]


def test_clients_sharing_the_web_servers_subnet_need_no_vpc_route():
    [entry] = aws_return_routes(["198.51.100.10"], VPC, [CLIENTS], "subnet-clients")
    assert entry["dest"] is None
    assert "layer 2" in entry["reason"]


def test_a_client_outside_the_vpc_gets_a_host_route():
    assert routes_for(["192.0.2.7", "203.0.113.9"]) == {"192.0.2.7": "192.0.2.7/32", "203.0.113.9": "203.0.113.9/32"}


def test_ipv6_needs_an_ipv6_web_subnet():
    [entry] = aws_return_routes(["2001:db8::10"], VPC, [CLIENTS, WEB], "subnet-web")
    assert entry["dest"] is None and entry["family"] == "ipv6"
    assert "no IPv6" in entry["reason"]


def test_ipv6_routes_follow_the_same_rules():
    vpc = dict(VPC, ipv6_cidr_block_association_set=ipv6_blocks("2001:db8:1::/56"))
    subnets = [dict(CLIENTS, ipv6_cidr_block_association_set=ipv6_blocks("2001:db8:1:1::/64")),
               dict(WEB, ipv6_cidr_block_association_set=ipv6_blocks("2001:db8:1:2::/64"))]
    assert routes_for(["2001:db8:1:1::10", "2001:db8:1:2::10", "2001:DB8:FFFF::1"], vpc, subnets) == {
        "2001:db8:1:1::10": "2001:db8:1:1::/64",
        "2001:db8:1:2::10": None,
        "2001:db8:ffff::1": "2001:db8:ffff::1/128",
    }


def test_blocks_being_removed_do_not_count():
    vpc = dict(VPC, cidr_block_association_set=VPC["cidr_block_association_set"] + [
        {"cidr_block": "192.0.2.0/24", "cidr_block_state": {"state": "disassociated"}}])
    assert routes_for(["192.0.2.7"], vpc) == {"192.0.2.7": "192.0.2.7/32"}


def test_an_address_in_the_vpc_but_in_no_subnet():
    [entry] = aws_return_routes(["198.51.100.10"], VPC, [WEB], "subnet-web")
    assert entry["dest"] is None and "none of its subnets" in entry["reason"]


@pytest.mark.parametrize("bad", ["client-host", "198.51.100.300", ""])
def test_a_host_name_instead_of_an_address_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="is not an IP address"):
        aws_return_routes([bad], VPC, [CLIENTS, WEB], "subnet-web")


def test_an_unknown_web_subnet_is_refused():
    with pytest.raises(AnsibleFilterError, match="subnet-nope"):
        aws_return_routes(["192.0.2.7"], VPC, [CLIENTS, WEB], "subnet-nope")


# ec2_vpc_route_table_info's snake_case routes.
LOCAL = {"destination_cidr_block": "198.51.100.0/24", "gateway_id": "local", "origin": "CreateRouteTable"}
DEFAULT = {"destination_cidr_block": "0.0.0.0/0", "gateway_id": "igw-1", "origin": "CreateRoute"}
FOREIGN_TO_ROUTER = {"destination_cidr_block": "203.0.113.0/24", "network_interface_id": ENI, "origin": "CreateRoute"}
OURS = {"destination_cidr_block": "198.51.100.0/25", "network_interface_id": ENI, "origin": "CreateRoute"}
PREFIX_LIST = {"destination_prefix_list_id": "pl-1", "gateway_id": "vpce-1", "origin": "CreateRoute"}
FOREIGN_IPV6 = {"destination_ipv6_cidr_block": "2001:db8::/64", "gateway_id": "igw-1", "origin": "CreateRoute"}


def test_plan_adds_only_what_is_missing():
    table = [LOCAL, DEFAULT, OURS, FOREIGN_TO_ROUTER]
    plan = aws_route_plan(table, ["198.51.100.0/25", "192.0.2.7/32", "192.0.2.7/32"], ENI)
    assert plan["add"] == [{"dest": "192.0.2.7/32", "network_interface_id": ENI}]
    assert plan["remove"] == [] and plan["conflicts"] == []
    assert aws_route_plan(table + [dict(OURS, destination_cidr_block="192.0.2.7/32")],
                          ["198.51.100.0/25", "192.0.2.7/32"], ENI)["add"] == []


def test_plan_removes_only_routes_with_both_destination_and_target():
    other_target = {"destination_cidr_block": "192.0.2.7/32", "network_interface_id": "eni-other", "origin": "CreateRoute"}
    table = [LOCAL, DEFAULT, OURS, FOREIGN_TO_ROUTER, other_target, PREFIX_LIST, FOREIGN_IPV6]
    plan = aws_route_plan(table, ["198.51.100.0/25", "192.0.2.7/32", "192.0.2.8/32"], ENI, present=False)
    assert plan["remove"] == ["198.51.100.0/25"]
    assert plan["add"] == [] and plan["conflicts"] == []
    # Everything else with a CIDR destination is listed, so that a purge keeps it.
    assert plan["keep"] == [{"dest": "198.51.100.0/24"}, {"dest": "0.0.0.0/0"}, {"dest": "203.0.113.0/24"},
                            {"dest": "192.0.2.7/32"}, {"dest": "2001:db8::/64"}]


def test_plan_never_replaces_a_route_to_another_target():
    plan = aws_route_plan([LOCAL, DEFAULT], ["0.0.0.0/0", "192.0.2.7/32"], ENI)
    assert plan["conflicts"] == [{"dest": "0.0.0.0/0", "target": "igw-1"}]
    assert plan["add"] == [{"dest": "192.0.2.7/32", "network_interface_id": ENI}]


def test_plan_compares_canonical_destinations():
    table = [dict(OURS, destination_cidr_block="192.0.2.7/32"),
             {"destination_ipv6_cidr_block": "2001:db8::7/128", "network_interface_id": ENI, "origin": "CreateRoute"}]
    plan = aws_route_plan(table, ["192.0.2.7", "2001:DB8:0::7/128"], ENI)
    assert plan["add"] == []
    assert aws_route_plan(table, ["192.0.2.7", "2001:DB8:0::7/128"], ENI, present=False)["remove"] == [
        "192.0.2.7/32", "2001:db8::7/128"]


def test_plan_counts_a_route_to_a_fleet_peer_as_its_own():
    # After a failover the notify hook pointed the route at the peer: kept there, not pointed back, no conflict;
    # and removed with the plan's own when the option goes off.
    taken = dict(OURS, network_interface_id="eni-peer")
    plan = aws_route_plan([LOCAL, DEFAULT, taken], ["198.51.100.0/25"], ENI, also=["eni-peer"])
    assert plan["add"] == [] and plan["conflicts"] == []
    assert aws_route_plan([LOCAL, DEFAULT, taken], ["198.51.100.0/25"], ENI, present=False, also=["eni-peer"])[
        "remove"] == ["198.51.100.0/25"]
    # Without it, the peer's route is another target's.
    assert aws_route_plan([LOCAL, DEFAULT, taken], ["198.51.100.0/25"], ENI)["conflicts"] == [
        {"dest": "198.51.100.0/25", "target": "eni-peer"}]
    with pytest.raises(AnsibleFilterError, match="also must be a list"):
        aws_route_plan([], ["192.0.2.7/32"], ENI, also="eni-peer")


def test_plan_needs_a_target_and_real_cidrs():
    with pytest.raises(AnsibleFilterError, match="network_interface_id is required"):
        aws_route_plan([], ["192.0.2.7/32"], "")
    with pytest.raises(AnsibleFilterError, match="is not a CIDR block"):
        aws_route_plan([], ["client"], ENI)


def test_the_filters_are_registered():
    assert FilterModule().filters() == {"aws_return_routes": aws_return_routes, "aws_route_plan": aws_route_plan}
