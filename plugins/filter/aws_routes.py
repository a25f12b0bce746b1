# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the VPC routes that bring a web server's replies back through the router.

Two filters live here, each documented in its own sidecar file (aws_return_routes.yml,
aws_route_plan.yml), as in router_policy.py.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

# Association states that mean "this block is not the VPC's or subnet's (any more)".
GONE_STATES = ("disassociating", "disassociated", "failed", "failing")


def _state(association, key):
    state = association.get(key) or {}
    return state.get("state") if hasattr(state, "get") else None


def _networks(blocks, cidr_key, state_key):
    networks = []
    for block in blocks or ():
        if not hasattr(block, "get") or not block.get(cidr_key) or _state(block, state_key) in GONE_STATES:
            continue
        networks.append(ipaddress.ip_network(str(block[cidr_key]), strict=False))
    return networks


def vpc_networks(vpc):
    """The VPC's IPv4 and IPv6 CIDR blocks."""
    ipv4 = _networks(vpc.get("cidr_block_association_set"), "cidr_block", "cidr_block_state")
    if not ipv4 and vpc.get("cidr_block"):
        ipv4 = [ipaddress.ip_network(str(vpc["cidr_block"]), strict=False)]
    ipv6 = _networks(vpc.get("ipv6_cidr_block_association_set"), "ipv6_cidr_block", "ipv6_cidr_block_state")
    return ipv4 + ipv6


def subnet_networks(subnet):
    """A subnet's IPv4 and IPv6 CIDR blocks."""
    ipv4 = [ipaddress.ip_network(str(subnet["cidr_block"]), strict=False)] if subnet.get("cidr_block") else []
    ipv6 = _networks(subnet.get("ipv6_cidr_block_association_set"), "ipv6_cidr_block", "ipv6_cidr_block_state")
    return ipv4 + ipv6


def _containing(address, networks):
    return next((n for n in networks if n.version == address.version and address in n), None)


def return_route(address, vpc_blocks, subnets, web_subnet_id):
    """The route one client address needs: (destination or None, reason)."""
    web = [s for s in subnets if s.get("subnet_id") == web_subnet_id]
    if not web:
        raise AnsibleFilterError("aws_return_routes: the web server's subnet %s is not among the VPC's subnets" % web_subnet_id)
    web_blocks = subnet_networks(web[0])
    if address.version == 6 and not any(n.version == 6 for n in web_blocks):
        return None, "IPv6, and the web server's subnet has no IPv6 CIDR block: it sends no IPv6 replies"
    if _containing(address, web_blocks):
        return None, ("in the web server's subnet: delivered at layer 2, where route tables do not apply "
                      "(the web host's own route through the router does it)")
    if not _containing(address, vpc_blocks):
        return str(ipaddress.ip_network(address)), "outside the VPC: a host route"
    for subnet in subnets:
        block = _containing(address, subnet_networks(subnet))
        if block:
            return str(block), ("in subnet %s of the VPC: AWS accepts a route more specific than the local route "
                                "only for a whole subnet" % subnet.get("subnet_id"))
    return None, "inside the VPC's CIDR blocks but in none of its subnets"


def aws_return_routes(addresses, vpc, subnets, web_subnet_id):
    """For each client address, the route the web server's route table needs for the replies to it."""
    if not hasattr(vpc, "get"):
        raise AnsibleFilterError("aws_return_routes: vpc must be a dict, got %r" % (vpc,))
    subnets = [s for s in subnets or () if hasattr(s, "get")]
    vpc_blocks = vpc_networks(vpc)
    result = []
    for value in addresses:
        try:
            address = ipaddress.ip_address(str(value).strip())
        except ValueError:
            raise AnsibleFilterError("aws_return_routes: client address %r is not an IP address" % (value,)) from None
        dest, reason = return_route(address, vpc_blocks, subnets, web_subnet_id)
        result.append({"address": str(address), "family": "ipv%d" % address.version, "dest": dest, "reason": reason})
    return result


# Route fields that name a route's target, as ec2_vpc_route_table_info gives them.
TARGET_KEYS = (
    "network_interface_id", "instance_id", "gateway_id", "nat_gateway_id", "transit_gateway_id",
    "vpc_peering_connection_id", "egress_only_internet_gateway_id", "local_gateway_id", "carrier_gateway_id",
    "core_network_arn", "vpc_endpoint_id",
)


def _canonical(cidr):
    try:
        return str(ipaddress.ip_network(str(cidr).strip(), strict=False))
    except ValueError:
        raise AnsibleFilterError("aws_route_plan: %r is not a CIDR block" % (cidr,)) from None


def _route_dest(route):
    return route.get("destination_cidr_block") or route.get("destination_ipv6_cidr_block")


def _route_target(route):
    return next((str(route[k]) for k in TARGET_KEYS if route.get(k)), "another target")


def aws_route_plan(routes, dests, network_interface_id, present=True, also=None):
    """What to change in a route table so that ``dests`` go to ``network_interface_id`` (or no longer do).
    A route to one of ``also`` (the other routers of a fleet group, one of which took the route over on
    failover) is as much the plan's own: kept where present, removed where not."""
    if not network_interface_id:
        raise AnsibleFilterError("aws_route_plan: network_interface_id is required")
    if isinstance(also, str) or not all(isinstance(i, str) for i in also or ()):
        raise AnsibleFilterError("aws_route_plan: also must be a list of network interface ids, got %r" % (also,))
    targets = {network_interface_id, *(also or ())}
    routes = [r for r in routes or () if hasattr(r, "get") and _route_dest(r)]
    wanted = []
    for dest in dests or ():
        if _canonical(dest) not in wanted:
            wanted.append(_canonical(dest))
    by_dest = {_canonical(_route_dest(r)): r for r in routes}
    ours = [d for d in wanted if d in by_dest and by_dest[d].get("network_interface_id") in targets]
    if present:
        missing = [d for d in wanted if d not in ours]
        conflicts = [{"dest": d, "target": _route_target(by_dest[d])} for d in missing if d in by_dest]
        add = [{"dest": d, "network_interface_id": network_interface_id} for d in missing if d not in by_dest]
        remove = []
    else:
        conflicts, add, remove = [], [], ours
    keep = [{"dest": _route_dest(r)} for r in routes if _canonical(_route_dest(r)) not in remove]
    return {"add": add, "remove": remove, "conflicts": conflicts, "keep": keep}


class FilterModule:
    """tproxy.envoy AWS route filters."""

    def filters(self):
        return {"aws_return_routes": aws_return_routes, "aws_route_plan": aws_route_plan}
