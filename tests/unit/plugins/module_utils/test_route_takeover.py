"""route_takeover plans exactly the routes that name a peer's interface, and applies them with ReplaceRoute."""

import pytest

from ansible_collections.tproxy.envoy.plugins.module_utils.route_takeover import TakeoverError, apply, plan, read_route_tables

TABLES = [{"RouteTableId": "rtb-1", "Routes": [
    {"DestinationCidrBlock": "198.51.100.0/24", "GatewayId": "local"},
    {"DestinationCidrBlock": "203.0.113.0/25", "NetworkInterfaceId": "eni-peer"},
    {"DestinationIpv6CidrBlock": "2001:db8:f::/64", "NetworkInterfaceId": "eni-peer"},
    {"DestinationCidrBlock": "203.0.113.128/25", "NetworkInterfaceId": "eni-other"},
    {"DestinationCidrBlock": "192.0.2.0/24", "NetworkInterfaceId": "eni-own"}]}]


def test_only_routes_that_name_a_peer_move():
    assert plan(TABLES, "eni-own", ["eni-peer"]) == [
        {"route_table_id": "rtb-1", "destination_key": "DestinationCidrBlock", "destination": "203.0.113.0/25", "from": "eni-peer"},
        {"route_table_id": "rtb-1", "destination_key": "DestinationIpv6CidrBlock", "destination": "2001:db8:f::/64",
         "from": "eni-peer"}]


def test_own_interface_among_the_peers_moves_nothing_of_its_own():
    assert plan(TABLES, "eni-own", ["eni-own"]) == []


def test_own_interface_is_required():
    with pytest.raises(TakeoverError, match="own_interface is required"):
        plan(TABLES, "", ["eni-peer"])


class FakeEC2:
    def __init__(self, tables):
        self.tables, self.calls = tables, []

    def describe_route_tables(self, RouteTableIds):  # noqa: N803  (boto3's names)
        return {"RouteTables": [t for t in self.tables if t["RouteTableId"] in RouteTableIds]}

    def replace_route(self, **kwargs):
        self.calls.append(kwargs)


def test_a_missing_route_table_is_named():
    with pytest.raises(TakeoverError, match="route tables not found: rtb-2"):
        read_route_tables(FakeEC2(TABLES), ["rtb-1", "rtb-2"])


def test_apply_replaces_each_planned_route_towards_the_own_interface():
    ec2 = FakeEC2(TABLES)
    apply(ec2, plan(TABLES, "eni-own", ["eni-peer"]), "eni-own")
    assert ec2.calls == [
        {"RouteTableId": "rtb-1", "NetworkInterfaceId": "eni-own", "DestinationCidrBlock": "203.0.113.0/25"},
        {"RouteTableId": "rtb-1", "NetworkInterfaceId": "eni-own", "DestinationIpv6CidrBlock": "2001:db8:f::/64"}]
