# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The topology as the inventory describes it: who routes through which router, in which families.

Pure functions of the inventory (``groups`` and ``hostvars``), used by the ``topology`` filter and
through it by the client and webserver roles, the router role's forwarding default and
``aws_infra.yml``. Every "which router serves this host" question is answered here, once.

The rules:

- Each router belongs to one router group: its ``router_group``, ``routers`` when unset (so by
  default every router is in one group). A client names the group that serves it with the inventory
  variable ``tproxy_router_group`` (``routers`` when unset). Web servers are reached through every
  router (each router may forward any client's request to any web server).
- The routers of a group that carry its clients' traffic (``active``): every router of the group when
  they hold a virtual address between them (``router_virtual_address``, ``router_virtual_address6``,
  the same on each), else the group's first router in inventory order; the others carry none of the
  group's traffic (they stand by; they accept the group's clients' forwarded traffic all the same).
- A group's clients route to each web server through the group's gateway: the virtual address, or the
  active router's topology address, per family. IPv6 where the client, the web server and the gateway
  have an IPv6 address and the active routers intercept IPv6 (``router_ipv6``).
- The effective router settings that other hosts depend on, with the router role's defaults:
  ``router_ipv6`` (default: the router has an IPv6 topology address) and
  ``router_preserve_client_address`` (default false). With the latter, each web server routes its
  replies to each client through that client's gateway, in every family the client reaches it in.
"""

from __future__ import annotations

import ipaddress

from ansible.module_utils.parsing.convert_bool import boolean

FAMILIES = ("ipv4", "ipv6")
ROLE_GROUPS = ("routers", "clients", "webservers")
# The router group of a router without router_group, and of a client without tproxy_router_group.
DEFAULT_ROUTER_GROUP = "routers"
# The router role's defaults of the settings other hosts depend on (router_ipv6's default is the
# router's IPv6 topology address, computed in router_settings).
ROUTER_DEFAULTS = {"router_preserve_client_address": False}


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


def _virtual(hostvars, host, name, version):
    value = _get(hostvars, host, name)
    if value is None:
        return None
    try:
        parsed = ipaddress.ip_address(str(value))
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != version or str(parsed) != str(value):
        raise TopologyError("router %s: %s must be one IPv%d address%s, got %r" % (
            host, name, version, " in compressed form" if version == 6 else "", value))
    return str(parsed)


def router_settings(hostvars, host):
    """The settings of router ``host`` that other hosts depend on, with the router role's defaults."""
    return {
        "group": _name(hostvars, host, "router_group", "router"),
        "ipv6": _flag(hostvars, host, "router_ipv6", topology_address6(hostvars, host) is not None),
        "preserve_client_address": _flag(hostvars, host, "router_preserve_client_address",
                                         ROUTER_DEFAULTS["router_preserve_client_address"]),
        "virtual_address": {"ipv4": _virtual(hostvars, host, "router_virtual_address", 4),
                            "ipv6": _virtual(hostvars, host, "router_virtual_address6", 6)},
        "address": {family: address(hostvars, host, family) for family in FAMILIES},
    }


# What the routers of a group holding a virtual address must agree on, by the variable that sets it.
_AGREE = (("router_ipv6", lambda s: s["ipv6"]),
          ("router_preserve_client_address", lambda s: s["preserve_client_address"]),
          ("router_virtual_address", lambda s: s["virtual_address"]["ipv4"]),
          ("router_virtual_address6", lambda s: s["virtual_address"]["ipv6"]))


def _router_group(name, members, settings):
    """One router group: who carries its traffic, through which gateway, with which settings."""
    virtual = [r for r in members if any(settings[r]["virtual_address"].values())]
    if virtual:
        active = list(members)
        for variable, read in _AGREE:
            values = {r: read(settings[r]) for r in members}
            if len(set(values.values())) > 1:
                raise TopologyError(
                    "router group %s: its routers share a virtual address, so they must agree on %s: %s" % (
                        name, variable, ", ".join("%s has %r" % item for item in values.items())))
        lead = settings[members[0]]
        if lead["virtual_address"]["ipv4"] is None:
            raise TopologyError("router group %s: router_virtual_address6 is set but router_virtual_address is not "
                                "(the clients' IPv4 traffic needs a gateway too)" % name)
        if lead["ipv6"] and lead["address"]["ipv6"] and lead["virtual_address"]["ipv6"] is None:
            raise TopologyError("router group %s: its routers intercept IPv6 (router_ipv6) and share "
                                "router_virtual_address, but router_virtual_address6 is not set: set it, or "
                                "router_ipv6: false" % name)
        via = dict(lead["virtual_address"])
    else:
        active = list(members[:1])
        lead = settings[members[0]]
        via = dict(lead["address"])
    ipv6 = bool(lead["ipv6"] and via["ipv6"])
    return {
        "name": name,
        "routers": list(members),
        "active": active,
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
            by_group.setdefault(self.settings[router]["group"], []).append(router)
        self.router_groups = {name: _router_group(name, members, self.settings) for name, members in by_group.items()}
        for client in self.members["clients"]:
            group = self.client_group(client)
            if group is not None:
                group["clients"].append(client)

    def client_group(self, host):
        """The router group that serves ``host`` as a client, or None when the inventory has no router."""
        name = _name(self.hostvars, host, "tproxy_router_group", "client")
        if name in self.router_groups:
            return self.router_groups[name]
        if not self.router_groups:
            # No router at all: no routes, and the client role's own check says so.
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
        """Router ``host``'s effective settings, group, and the clients whose traffic it accepts."""
        settings = self.settings.get(host) or router_settings(self.hostvars, host)
        group = self.router_groups.get(settings["group"])
        clients = list(group["clients"]) if group else []
        networks = [address(self.hostvars, c, "ipv4") + "/32" for c in clients]
        networks += [a + "/128" for a in (address(self.hostvars, c, "ipv6") for c in clients) if a]
        return {"group": settings["group"], "ipv6": settings["ipv6"],
                "preserve_client_address": settings["preserve_client_address"],
                "active": bool(group) and host in group["active"], "clients": clients, "client_networks": networks}

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
