# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Route takeover in a VPC: the router that now holds a fleet group's address points the route table
entries that name its peers' network interfaces at its own (EC2 ReplaceRoute).

In a VPC an address cannot move by ARP: the route tables decide which instance gets the clients'
packets. keepalived's notify hook runs this on the router that became the holder (the file also runs as a
script, ``python3 route_takeover.py --config FILE``), and the ``tproxy.envoy.ec2_route_takeover`` module
uses the same plan and apply steps. Only boto3 is needed on the router.
"""

from __future__ import annotations

import argparse
import json
import sys

# A route names its destination by one of these; ReplaceRoute takes the same key.
DESTINATION_KEYS = ("DestinationCidrBlock", "DestinationIpv6CidrBlock", "DestinationPrefixListId")


class TakeoverError(Exception):
    """Something the caller must fix (a route table that does not exist, an interface that is not given)."""


def plan(route_tables, own_interface, peer_interfaces):
    """The routes to move: each route of ``route_tables`` (DescribeRouteTables' RouteTables) whose target is
    one of ``peer_interfaces``, as {route_table_id, destination_key, destination, from}. Routes that already
    point at ``own_interface``, or anywhere else, are left alone."""
    if not own_interface:
        raise TakeoverError("own_interface is required: the network interface of the router taking over")
    peers = set(peer_interfaces or []) - {own_interface}
    moves = []
    for table in route_tables:
        for route in table.get("Routes", []):
            target = route.get("NetworkInterfaceId")
            if target not in peers:
                continue
            key = next((k for k in DESTINATION_KEYS if route.get(k)), None)
            if key is None:
                continue
            moves.append({"route_table_id": table["RouteTableId"], "destination_key": key,
                          "destination": route[key], "from": target})
    return moves


def read_route_tables(ec2, route_table_ids):
    """DescribeRouteTables of exactly these ids; a missing one is a TakeoverError naming it."""
    if not route_table_ids:
        return []
    found = ec2.describe_route_tables(RouteTableIds=list(route_table_ids))["RouteTables"]
    missing = sorted(set(route_table_ids) - {table["RouteTableId"] for table in found})
    if missing:
        raise TakeoverError("route tables not found: %s" % ", ".join(missing))
    return found


def apply(ec2, moves, own_interface):
    """ReplaceRoute for each planned move, towards ``own_interface``."""
    for move in moves:
        ec2.replace_route(RouteTableId=move["route_table_id"], NetworkInterfaceId=own_interface,
                          **{move["destination_key"]: move["destination"]})
    return moves


def take_over(ec2, route_table_ids, own_interface, peer_interfaces, dry_run=False):
    """Plan and (unless ``dry_run``) apply; returns the moves."""
    moves = plan(read_route_tables(ec2, route_table_ids), own_interface, peer_interfaces)
    return moves if dry_run else apply(ec2, moves, own_interface)


def _say(text, stream=None):
    """One line to the hook's log (module_utils may not print: sanity's rule for modules)."""
    (stream or sys.stdout).write(text + "\n")


def main(argv=None):
    """The notify hook's entry point: the configuration file the router role writes, one group of it."""
    parser = argparse.ArgumentParser(description="Point the route table entries of a fleet group's peers at this router.")
    parser.add_argument("--config", required=True, help="JSON: {region, endpoint_url?, own_interface, groups: {NAME: "
                                                        "{route_table_ids, peer_interfaces}}}")
    parser.add_argument("--group", required=True, help="the group whose address this router now holds")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as handle:
        config = json.load(handle)
    group = config.get("groups", {}).get(args.group)
    if group is None:
        _say("route takeover: group %s has no route tables in %s: nothing to do" % (args.group, args.config))
        return 0
    # Only the script needs them; the module has its own client.
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel
    ec2 = boto3.client("ec2", region_name=config["region"], endpoint_url=config.get("endpoint_url") or None)
    try:
        moves = take_over(ec2, group["route_table_ids"], config["own_interface"], group["peer_interfaces"], args.dry_run)
    except (TakeoverError, BotoCoreError, ClientError) as exc:
        _say("route takeover: group %s: %s" % (args.group, exc), sys.stderr)
        return 2
    for move in moves:
        _say("route takeover: %s %s: %s -> %s%s" % (
            move["route_table_id"], move["destination"], move["from"], config["own_interface"],
            " (dry run)" if args.dry_run else ""))
    if not moves:
        _say("route takeover: group %s: every route already points here" % args.group)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
