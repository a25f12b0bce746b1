# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The topology model: which routers serve which host, in which families, with which routes."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tproxy.envoy.plugins.module_utils.topology import Topology, TopologyError

DOCUMENTATION = r"""
name: topology
author: tproxy.envoy contributors (@tproxy)
version_added: 0.2.0
short_description: Which routers serve which client and web server, in which families, with which routes
description:
  - Reads the inventory (C(groups) C(routers), C(clients), C(webservers) and C(hostvars)) and answers every
    question one host's role asks about the others; the client and webserver roles take their defaults from
    it, the router role its forwarding default, and C(playbooks/aws_infra.yml) the routes to the clients.
  - "Router groups: each router is in the group its C(router_group) names (C(routers) when unset, so by default
    every router is in one group), or in each group of its C(router_groups) (active/active); a client is served
    by the group its inventory variable C(tproxy_router_group) names (C(routers) when unset). A web server is
    reached through every router."
  - "The routers of a group that carry its clients' traffic (RV(_value.router_groups.active)): all of them when
    they share a virtual address (C(router_virtual_address), C(router_virtual_address6), the same on each, and
    then the same C(router_ipv6) and C(router_preserve_client_address)); without one, the group's first router in
    inventory order, the others standing by. The clients route through the virtual address, or that router's
    topology address (P(tproxy.envoy.topology_addresses#filter))."
  - "The fleet: a group with a virtual address is a VRRP instance (keepalived) on each of its routers, with the
    group's VRRP id (C(router_vrrp_id), 51 when unset) and each router's priority (C(router_priority); 0 or unset:
    200 for the group's first router in inventory order, 190 for the next, ...); each group's VRRP id and addresses
    are its own and no host's address."
  - "The router settings other hosts depend on, with the router role's defaults: C(router_ipv6) (default: the router
    has an IPv6 topology address) and C(router_preserve_client_address) (default false), read from the inventory
    and the extra vars."
  - Fails, naming the host and the variable, when the inventory describes no usable topology (a
    C(tproxy_router_group) that names no group, routers of one group that disagree, an address that is none).
positional: hostvars, host
options:
  _input:
    description: The C(groups) magic variable.
    type: dict
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  host:
    description:
      - "One inventory host name: the result is then that host's views (RV(_value.router), RV(_value.client),
        RV(_value.webserver)), each what the host would be in that part, whether or not it is in the group
        (a role may be applied to any host)."
      - Without it, the whole model.
    type: str
"""

EXAMPLES = r"""
- name: Show which routers serve this client and the routes it needs
  ansible.builtin.debug:
    msg: "{{ (groups | tproxy.envoy.topology(hostvars, inventory_hostname)).client }}"

- name: Show every router group and the clients it serves
  ansible.builtin.debug:
    msg: "{{ (groups | tproxy.envoy.topology(hostvars)).router_groups }}"
"""

RETURN = r"""
_value:
  description: With O(host), that host's three views; without, the whole model.
  type: dict
  contains:
    router_groups:
      description: Without O(host). Each router group by name.
      type: dict
      contains:
        routers:
          description: Its routers, in inventory order.
          type: list
          elements: str
        active:
          description: The routers that carry its clients' traffic.
          type: list
          elements: str
        first_choice:
          description:
            - The router that carries its clients' traffic when every router serves - with a virtual address, the one of
              the highest VRRP priority (the first in inventory order among equals), else the one active router. On EC2,
              the route table entries for the group name its primary network interface until a failover moves them.
          type: str
        via:
          description: The clients' gateway per family (C(ipv4), C(ipv6)); none where the group routes no such traffic.
          type: dict
        vrrp:
          description: With a virtual address, C(id) (its VRRP id) and C(priorities) (each router's); else none.
          type: dict
        virtual_address:
          description: Its virtual address per family (C(ipv4), C(ipv6)); none without.
          type: dict
        families:
          description: The families its clients' traffic goes through it in (C(ipv4), and C(ipv6) with router_ipv6).
          type: list
          elements: str
        ipv6:
          description: The active routers' effective C(router_ipv6).
          type: bool
        preserve_client_address:
          description: The active routers' effective C(router_preserve_client_address).
          type: bool
        clients:
          description: The clients it serves.
          type: list
          elements: str
    routers:
      description: Without O(host). Each router's view (as RV(_value.router)) by host name.
      type: dict
    clients:
      description: Without O(host). Each client's view (as RV(_value.client)) by host name.
      type: dict
    webservers:
      description: Without O(host). Each web server's view (as RV(_value.webserver)) by host name.
      type: dict
    router:
      description: With O(host). The host as a router.
      type: dict
      contains:
        group:
          description: Its (first) router group.
          type: str
        groups:
          description: Its router groups.
          type: list
          elements: str
        vrrp:
          description:
            - Its VRRP instances, one per group with a virtual address, each C({name, virtual_address,
              virtual_address6, vrrp_id, priority, address, address6, peers, interface_id, peer_interface_ids})
              (C(peers) the other routers' IPv4 addresses; on EC2 C(interface_id) and C(peer_interface_ids) the
              primary network interfaces of the aws_ec2 inventory's C(network_interfaces)).
          type: list
          elements: dict
        ipv6:
          description: Its effective C(router_ipv6).
          type: bool
        preserve_client_address:
          description: Its effective C(router_preserve_client_address).
          type: bool
        active:
          description: Whether it carries a group's clients' traffic.
          type: bool
        clients:
          description: Its groups' clients.
          type: list
          elements: str
        client_networks:
          description: Those clients' addresses as host networks, IPv4 (C(/32)) first, then IPv6 (C(/128)).
          type: list
          elements: str
          sample: [192.0.2.10/32, 2001:db8::10/128]
    client:
      description: With O(host). The host as a client.
      type: dict
      contains:
        group:
          description: The router group that serves it; none without routers in the inventory.
          type: str
        routers:
          description: The routers that carry its traffic.
          type: list
          elements: str
        via:
          description: Its gateway per family.
          type: dict
        families:
          description: The families its web traffic goes through the routers in.
          type: list
          elements: str
        routes:
          description: One host route C({dest, via}) per web server and family, IPv4 first.
          type: list
          elements: dict
          sample: [{dest: 192.0.2.180/32, via: 192.0.2.100}, {dest: 2001:db8::180/128, via: 2001:db8::100}]
        preserve_client_address:
          description: Whether its routers connect to the web servers from its own address.
          type: bool
    webserver:
      description: With O(host). The host as a web server.
      type: dict
      contains:
        families:
          description: Its families (C(ipv4), and C(ipv6) with an IPv6 topology address).
          type: list
          elements: str
        routers:
          description: The routers that reach it (every router).
          type: list
          elements: str
        clients:
          description:
            - Each client and family whose requests reach it through a router, each C({client, family, routers,
              origins, preserve_client_address}); C(origins) are the addresses the web server may see the request
              come from (the client's own with C(preserve_client_address), else its routers').
          type: list
          elements: dict
        return_routes:
          description: The routes its replies need, C({dest, via}) to each client through its gateway (IPv4 first)
            for the clients whose routers keep their address; else empty.
          type: list
          elements: dict
"""


def topology(groups, hostvars, host=None):
    """The topology model of the inventory, or ``host``'s views of it."""
    if not hasattr(groups, "get"):
        raise AnsibleFilterError("topology: expects the groups magic variable, got %r" % (groups,))
    try:
        model = Topology(groups, hostvars)
        return model.whole() if host is None else model.host(str(host))
    except TopologyError as e:
        raise AnsibleFilterError("tproxy.envoy.topology: %s" % e) from None


class FilterModule:
    """tproxy.envoy topology model."""

    def filters(self):
        return {"topology": topology}
