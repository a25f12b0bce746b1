# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The topology as the inventory describes it: who routes through which router, in which families.

Pure functions of the inventory (``groups`` and ``hostvars``), used by the ``topology`` filter and
through it by the client and webserver roles, the router role's forwarding default and
``aws_infra.yml``. Every "which router serves this host" question is answered here, once.

The rules:

- Each router belongs to one router group: its ``router_group``, ``routers`` when unset (so by
  default every router is in one group); or, active/active, to each group of its ``router_groups``
  (``{name, virtual_address, virtual_address6, vrrp_id, priority}`` each). A client names the group that serves it with the inventory
  variable ``tproxy_router_group`` (``routers`` when unset). Web servers are reached through every
  router (each router may forward any client's request to any web server).
- The routers of a group that carry its clients' traffic (``active``): every router of the group when
  they hold a virtual address between them (``router_virtual_address``, ``router_virtual_address6``,
  the same on each), else the group's first router in inventory order; the others carry none of the
  group's traffic (they stand by; they accept the group's clients' forwarded traffic all the same).
- A group's clients route to each web server through the group's gateway: the virtual address, or the
  active router's topology address, per family. IPv6 where the client, the web server and the gateway
  have an IPv6 address and the active routers intercept IPv6 (``router_ipv6``).
- The fleet: a group with a virtual address is one VRRP instance (keepalived) on each of its routers,
  with the group's VRRP id (``router_vrrp_id``, 51 when unset) and each router's priority
  (``router_priority``; unset or 0: 200 for the group's first router in inventory order, 190 for the
  next, ...). VRRP ids and virtual addresses are the group's own, and no host's address.
- The effective router settings that other hosts depend on, with the router role's defaults:
  ``router_ipv6`` (default: the router has an IPv6 topology address) and
  ``router_preserve_client_address`` (default false). With the latter, each web server routes its
  replies to each client through that client's gateway, in every family the client reaches it in.
"""

from __future__ import annotations

import ipaddress
import re

from ansible.module_utils.parsing.convert_bool import boolean

FAMILIES = ("ipv4", "ipv6")
ROLE_GROUPS = ("routers", "clients", "webservers")
# The router group of a router without router_group, and of a client without tproxy_router_group.
DEFAULT_ROUTER_GROUP = "routers"
# The router role's defaults of the settings other hosts depend on (router_ipv6's default is the
# router's IPv6 topology address, computed in router_settings).
ROUTER_DEFAULTS = {"router_preserve_client_address": False, "router_vrrp_id": 51, "router_priority": 0}
# A group name goes into keepalived's instance name and file names.
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
GROUP_KEYS = ("name", "virtual_address", "virtual_address6", "vrrp_id", "priority")
# Priority 255 belongs to the address owner (RFC 9568), 0 means "giving up": the default priorities
# go down from 200 by inventory order.
FIRST_PRIORITY, PRIORITY_STEP = 200, 10


class TopologyError(ValueError):
    """The inventory describes no usable topology; the message names the host and the variable."""


def _facts(hostvars, host):
    return hostvars.get(host, {}) if hasattr(hostvars, "get") else hostvars[host]


def _get(hostvars, host, name):
    """A host's variable, or None when it is unset or empty."""
    value = _facts(hostvars, host).get(name)
    return None if value is None or value == "" else value


def topology_address(hostvars, host):
    """The IPv4 topology address of one inventory host."""
    for key in ("private_ip_address", "ansible_host"):
        value = _get(hostvars, host, key)
        if value:
            return str(value)
    return str(host)


def _device_index(interface):
    attachment = interface.get("attachment") or {}
    index = attachment.get("device_index") if hasattr(attachment, "get") else None
    return index if isinstance(index, int) else float("inf")


def topology_address6(hostvars, host):
    """The IPv6 topology address of one inventory host, or None when it has none."""
    value = _get(hostvars, host, "tproxy_ipv6_address")
    if value:
        return str(value)
    # The aws_ec2 inventory's shape; the primary interface (device index 0) first, as for
    # private_ip_address.
    interfaces = [i for i in _facts(hostvars, host).get("network_interfaces") or () if hasattr(i, "get")]
    for interface in sorted(interfaces, key=_device_index):
        for entry in interface.get("ipv6_addresses") or ():
            value = entry.get("ipv6_address") if hasattr(entry, "get") else None
            if value:
                return str(value)
    return None


def address(hostvars, host, family):
    """The host's topology address in ``family``, or None (an IPv4 one always exists)."""
    if family not in FAMILIES:
        raise TopologyError("family must be ipv4 or ipv6, not %r" % (family,))
    return topology_address(hostvars, host) if family == "ipv4" else topology_address6(hostvars, host)


def host_route(dest, via):
    """A host route ``{dest, via}`` (/32 or /128)."""
    return {"dest": "%s/%d" % (dest, 128 if ":" in dest else 32), "via": via}


def _flag(hostvars, host, name, default):
    value = _get(hostvars, host, name)
    if value is None:
        return default
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise TopologyError("router %s: %s must be a boolean, got %r" % (host, name, value)) from None


def _name(hostvars, host, name, role):
    value = _get(hostvars, host, name)
    if value is None:
        return DEFAULT_ROUTER_GROUP
    if not isinstance(value, str):
        raise TopologyError("%s %s: %s must be the name of a router group, got %r" % (role, host, name, value))
    return value


def _address_of(value, version, what):
    try:
        parsed = ipaddress.ip_address(str(value))
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != version or str(parsed) != str(value):
        raise TopologyError("%s must be one IPv%d address%s, got %r" % (
            what, version, " in compressed form" if version == 6 else "", value))
    return str(parsed)


def _virtual(hostvars, host, name, version):
    value = _get(hostvars, host, name)
    return None if value is None else _address_of(value, version, "router %s: %s" % (host, name))


def _number(value, low, high, what, hint=""):
    try:
        number = int(value) if not isinstance(value, bool) and str(value).strip().lstrip("-").isdigit() else None
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise TopologyError("%s must be from %d to %d%s, got %r" % (what, low, high, hint, value))
    return number


_PRIORITY_HINT = " (255 is the address owner's; 0: by inventory order)"


def _memberships(hostvars, host):
    """Router ``host``'s groups, each ``{name, virtual_address: {ipv4, ipv6}, vrrp_id, priority, label}``
    (``label``: the variable names to show, by key): its ``router_groups``, else the one group of
    ``router_group``, ``router_virtual_address(6)``, ``router_vrrp_id`` and ``router_priority``."""
    given = _get(hostvars, host, "router_groups")
    if not given:
        single = {"name": "router_group", "virtual_address": "router_virtual_address",
                  "virtual_address6": "router_virtual_address6", "vrrp_id": "router_vrrp_id", "priority": "router_priority"}
        vrrp_id, priority = (_get(hostvars, host, key) for key in ("router_vrrp_id", "router_priority"))
        return [{"name": _name(hostvars, host, "router_group", "router"),
                 "virtual_address": {"ipv4": _virtual(hostvars, host, "router_virtual_address", 4),
                                     "ipv6": _virtual(hostvars, host, "router_virtual_address6", 6)},
                 "vrrp_id": _number(ROUTER_DEFAULTS["router_vrrp_id"] if vrrp_id is None else vrrp_id, 1, 255,
                                    "router %s: router_vrrp_id" % host),
                 "priority": _number(ROUTER_DEFAULTS["router_priority"] if priority is None else priority, 0, 254,
                                     "router %s: router_priority" % host, _PRIORITY_HINT),
                 "label": single}]
    if not isinstance(given, (list, tuple)):
        raise TopologyError("router %s: router_groups must be a list of groups, got %r" % (host, given))
    found = []
    for index, entry in enumerate(given):
        label = {key: "router_groups[%d].%s" % (index, key) for key in GROUP_KEYS}
        where = "router %s: %%s" % host
        if not hasattr(entry, "get") or not {"name", "virtual_address", "vrrp_id"} <= set(entry) or set(entry) - set(GROUP_KEYS):
            raise TopologyError(where % "router_groups[%d] must be a dict with name, virtual_address, vrrp_id and "
                                "optionally virtual_address6 and priority, got %r" % (index, entry))
        if not isinstance(entry["name"], str) or not GROUP_NAME.match(entry["name"]):
            raise TopologyError(where % "%s must be 1 to 32 letters, digits, '_' or '-' (starting with a letter or "
                                "digit), got %r" % (label["name"], entry["name"]))
        if entry["name"] in [m["name"] for m in found]:
            raise TopologyError(where % "router_groups names group %s twice" % entry["name"])
        vip6 = entry.get("virtual_address6")
        found.append({"name": entry["name"],
                      "virtual_address": {"ipv4": _address_of(entry["virtual_address"], 4, where % label["virtual_address"]),
                                          "ipv6": _address_of(vip6, 6, where % label["virtual_address6"]) if vip6 else None},
                      "vrrp_id": _number(entry["vrrp_id"], 1, 255, where % label["vrrp_id"]),
                      "priority": _number(entry.get("priority") or 0, 0, 254, where % label["priority"], _PRIORITY_HINT),
                      "label": label})
    return found


def router_settings(hostvars, host):
    """The settings of router ``host`` that other hosts depend on, with the router role's defaults."""
    groups = _memberships(hostvars, host)
    return {
        "group": groups[0]["name"] if groups else DEFAULT_ROUTER_GROUP,
        "groups": groups,
        "ipv6": _flag(hostvars, host, "router_ipv6", topology_address6(hostvars, host) is not None),
        "preserve_client_address": _flag(hostvars, host, "router_preserve_client_address",
                                         ROUTER_DEFAULTS["router_preserve_client_address"]),
        "address": {family: address(hostvars, host, family) for family in FAMILIES},
    }


# What the routers of a group holding a virtual address must agree on: the variable (or key of a
# router_groups entry) that sets it, and how to read it from the router's settings and membership.
_AGREE = (("router_ipv6", lambda s, m: s["ipv6"]),
          ("router_preserve_client_address", lambda s, m: s["preserve_client_address"]),
          ("virtual_address", lambda s, m: m["virtual_address"]["ipv4"]),
          ("virtual_address6", lambda s, m: m["virtual_address"]["ipv6"]),
          ("vrrp_id", lambda s, m: m["vrrp_id"]))


def _router_group(name, members, settings):
    """One router group: who carries its traffic, through which gateway, with which settings.
    ``members``: each router with its membership of the group, in inventory order."""
    routers = [r for r, _m in members]
    virtual = [r for r, m in members if any(m["virtual_address"].values())]
    vrrp = None
    if virtual:
        active = list(routers)
        for router, m in members:
            if m["virtual_address"]["ipv6"] and not settings[router]["address"]["ipv6"]:
                raise TopologyError("router %s: router group %s has the virtual IPv6 address %s, which needs an IPv6 "
                                    "address on the router (tproxy_ipv6_address)" % (router, name, m["virtual_address"]["ipv6"]))
        for variable, read in _AGREE:
            values = {r: read(settings[r], m) for r, m in members}
            if len(set(values.values())) > 1:
                shown = members[0][1]["label"].get(variable, variable)
                raise TopologyError(
                    "router group %s: its routers share a virtual address, so they must agree on %s: %s" % (
                        name, shown, ", ".join("%s has %r" % item for item in values.items())))
        lead = dict(settings[routers[0]], virtual_address=members[0][1]["virtual_address"])
        vrrp = {"id": members[0][1]["vrrp_id"],
                "priorities": {r: m["priority"] or max(FIRST_PRIORITY - PRIORITY_STEP * index, 1)
                               for index, (r, m) in enumerate(members)}}
        label = members[0][1]["label"]
        if lead["virtual_address"]["ipv4"] is None:
            raise TopologyError("router group %s: %s is set but %s is not (the clients' IPv4 traffic needs a gateway "
                                "too)" % (name, label["virtual_address6"], label["virtual_address"]))
        if lead["ipv6"] and lead["address"]["ipv6"] and lead["virtual_address"]["ipv6"] is None:
            raise TopologyError("router group %s: its routers intercept IPv6 (router_ipv6) and share %s, but %s is not "
                                "set: set it, or router_ipv6: false" % (name, label["virtual_address"], label["virtual_address6"]))
        via = dict(lead["virtual_address"])
    else:
        active = list(routers[:1])
        lead = settings[routers[0]]
        via = dict(lead["address"])
    ipv6 = bool(lead["ipv6"] and via["ipv6"])
    return {
        "name": name,
        "routers": list(routers),
        # With a virtual address: the VRRP id and each router's priority; its addresses are virtual_address.
        "vrrp": vrrp,
        "virtual_address": dict(members[0][1]["virtual_address"]) if vrrp else {"ipv4": None, "ipv6": None},
        "active": active,
        # The router that carries the traffic while all serve: the VRRP master by priority (the first in inventory
        # order among equals: max keeps the first), else the one active router.
        "first_choice": max(routers, key=lambda r: vrrp["priorities"][r]) if vrrp else active[0],
        "via": {"ipv4": via["ipv4"], "ipv6": via["ipv6"] if ipv6 else None},
        "families": ["ipv4"] + (["ipv6"] if ipv6 else []),
        "ipv6": lead["ipv6"],
        "preserve_client_address": lead["preserve_client_address"],
        "clients": [],
    }


class Topology:
    """The model of one inventory; build it with ``Topology(groups, hostvars)``."""

    def __init__(self, groups, hostvars):
        self.hostvars = hostvars
        self.members = {g: [str(h) for h in (groups.get(g) or ())] for g in ROLE_GROUPS}
        self.settings = {r: router_settings(hostvars, r) for r in self.members["routers"]}
        by_group = {}
        for router in self.members["routers"]:
            for membership in self.settings[router]["groups"]:
                by_group.setdefault(membership["name"], []).append((router, membership))
        self.router_groups = {name: _router_group(name, members, self.settings) for name, members in by_group.items()}
        self._check_fleet([str(h) for h in (groups.get("all") or ())] or sum(self.members.values(), []))
        for client in self.members["clients"]:
            group = self.client_group(client)
            if group is not None:
                group["clients"].append(client)

    def _check_fleet(self, hosts):
        """Each group with a virtual address has a VRRP id and addresses of its own, none a host's."""
        taken = {}
        for host in hosts:
            for family in FAMILIES:
                own = address(self.hostvars, host, family)
                if own:
                    taken.setdefault(own, "host %s" % host)
        ids = {}
        for name, group in self.router_groups.items():
            if group["vrrp"] is None:
                continue
            other = ids.setdefault(group["vrrp"]["id"], name)
            if other != name:
                raise TopologyError("router groups %s and %s both have the VRRP id %d (router_vrrp_id): each group "
                                    "needs its own, VRRP tells the groups on a network apart by it" % (other, name, group["vrrp"]["id"]))
            for family in FAMILIES:
                vip = group["virtual_address"][family]
                if vip and vip in taken:
                    raise TopologyError("router group %s: its virtual address %s is already the address of %s"
                                        % (name, vip, taken[vip]))
                if vip:
                    taken[vip] = "router group %s" % name

    def client_group(self, host):
        """The router group that serves ``host`` as a client, or None when the inventory has no router."""
        name = _name(self.hostvars, host, "tproxy_router_group", "client")
        if name in self.router_groups:
            return self.router_groups[name]
        if not self.router_groups or (host not in self.members["clients"] and _get(self.hostvars, host, "tproxy_router_group") is None):
            # No router at all: no routes, and the client role's own check says so. A host that is no
            # client (a router viewed as one) of a default group that does not exist: none either.
            return None
        raise TopologyError("client %s: tproxy_router_group %r%s names no router group (the routers' router_group: %s)" % (
            host, name, " (the default)" if _get(self.hostvars, host, "tproxy_router_group") is None else "",
            ", ".join(self.router_groups)))

    def client(self, host):
        """What client ``host`` routes, through which routers, in which families."""
        group = self.client_group(host)
        if group is None:
            return {"group": None, "routers": [], "via": {"ipv4": None, "ipv6": None}, "families": [], "routes": [],
                    "preserve_client_address": False}
        families = [f for f in group["families"] if address(self.hostvars, host, f)]
        routes = []
        for family in families:
            for web in self.members["webservers"]:
                dest = address(self.hostvars, web, family)
                if dest:
                    routes.append(host_route(dest, group["via"][family]))
        return {"group": group["name"], "routers": list(group["active"]), "via": dict(group["via"]),
                "families": families, "routes": routes,
                "preserve_client_address": group["preserve_client_address"]}

    def webserver(self, host):
        """Who reaches web server ``host`` through which routers, and the routes its replies need."""
        families = [f for f in FAMILIES if address(self.hostvars, host, f)]
        pairs, return_routes = [], {f: [] for f in FAMILIES}
        for client in self.members["clients"]:
            view = self.client(client)
            for family in view["families"]:
                if family not in families:
                    continue
                own = address(self.hostvars, client, family)
                routers = view["routers"]
                if view["preserve_client_address"]:
                    origins = [own]
                    return_routes[family].append(host_route(own, view["via"][family]))
                else:
                    origins = [a for a in (address(self.hostvars, r, family) for r in routers) if a]
                pairs.append({"client": client, "family": family, "routers": routers, "origins": origins,
                              "preserve_client_address": view["preserve_client_address"]})
        return {"families": families, "routers": list(self.members["routers"]), "clients": pairs,
                "return_routes": return_routes["ipv4"] + return_routes["ipv6"]}

    def router(self, host):
        """Router ``host``'s effective settings, groups, the clients whose traffic it accepts (those of
        each of its groups: it stands by for them where it does not carry them) and its VRRP instances."""
        settings = self.settings.get(host) or router_settings(self.hostvars, host)
        names = [m["name"] for m in settings["groups"]]
        groups = [self.router_groups[n] for n in names if n in self.router_groups]
        clients = [c for group in groups for c in group["clients"]]
        networks = [address(self.hostvars, c, "ipv4") + "/32" for c in clients]
        networks += [a + "/128" for a in (address(self.hostvars, c, "ipv6") for c in clients) if a]
        return {"group": settings["group"], "groups": names, "ipv6": settings["ipv6"],
                "preserve_client_address": settings["preserve_client_address"],
                "active": any(host in group["active"] for group in groups), "clients": clients, "client_networks": networks,
                "vrrp": [self._vrrp_instance(group, host) for group in groups if group["vrrp"] and host in group["routers"]]}

    def _vrrp_instance(self, group, host):
        """What keepalived on ``host`` needs for ``group``: its VRRP id, the router's priority and own
        addresses, its peers' (unicast: a VPC has no multicast) and, on EC2, the primary network interfaces."""
        peers = [r for r in group["routers"] if r != host]
        return {"name": group["name"], "virtual_address": group["virtual_address"]["ipv4"],
                "virtual_address6": group["virtual_address"]["ipv6"] or "", "vrrp_id": group["vrrp"]["id"],
                "priority": group["vrrp"]["priorities"][host], "address": address(self.hostvars, host, "ipv4"),
                "address6": address(self.hostvars, host, "ipv6"), "peers": [address(self.hostvars, r, "ipv4") for r in peers],
                "interface_id": self._primary_interface(host),
                "peer_interface_ids": [i for i in (self._primary_interface(r) for r in peers) if i]}

    def _primary_interface(self, host):
        """The id of the host's primary network interface as the aws_ec2 inventory gives it, else None."""
        interfaces = [i for i in _facts(self.hostvars, host).get("network_interfaces") or () if hasattr(i, "get")]
        for interface in sorted(interfaces, key=_device_index):
            if interface.get("network_interface_id"):
                return str(interface["network_interface_id"])
        return None

    def host(self, host):
        """Every view of ``host``: as router, client and web server (a role may run on a host of any group)."""
        return {"router": self.router(host), "client": self.client(host), "webserver": self.webserver(host)}

    def whole(self):
        """The whole model: router groups, and each group's hosts in their part."""
        return {
            "router_groups": {name: dict(group) for name, group in self.router_groups.items()},
            "routers": {r: self.router(r) for r in self.members["routers"]},
            "clients": {c: self.client(c) for c in self.members["clients"]},
            "webservers": {w: self.webserver(w) for w in self.members["webservers"]},
        }
