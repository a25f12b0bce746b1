# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The routers' fleet: which routers share a virtual address (VRRP, keepalived), read from the inventory."""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: router_fleet
author: tproxy.envoy contributors (@tproxy)
version_added: 0.1.0
short_description: The routers' VRRP groups, and what is wrong with them
description:
  - Groups the routers by their groups and gives, for each group, its virtual addresses, its VRRP id and its
    members in inventory order, each with its priority (C(router_priority), or with 0 (the default) 200 for the
    first member, 190 for the second, and so on) and topology addresses.
  - A router's groups are its C(router_groups) (each C({name, virtual_address, virtual_address6, vrrp_id, priority})),
    or else the one group of C(router_group), C(router_virtual_address), C(router_virtual_address6),
    C(router_vrrp_id) and C(router_priority); without C(router_virtual_address) none (a lone router, no keepalived).
  - C(problems) names every inconsistency, each naming the variable, so that a play can stop
    before any change.
  - Each router's values are read from O(hostvars); one not set there takes its value from O(defaults).
positional: hostvars, defaults
options:
  _input:
    description: The routers' inventory host names (C(groups['routers'])).
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  defaults:
    description:
      - The router role's values for a host that does not set them (C(router_group),
        C(router_virtual_address), C(router_virtual_address6), C(router_vrrp_id), C(router_priority)),
        optionally C(hosts), every inventory host, whose addresses a virtual address must not take, and
        C(host) with its C(router_groups), the current host's (which may not be in O(hostvars)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Stop on an inconsistent fleet
  ansible.builtin.assert:
    that: __fleet.problems | length == 0
    fail_msg: "{{ __fleet.problems | join('; ') }}"
  vars:
    __fleet: "{{ groups['routers'] | tproxy.envoy.router_fleet(hostvars, {'router_group': 'routers', 'router_vrrp_id': 51}) }}"
"""

RETURN = r"""
_value:
  description:
    - C(groups) (name to C(virtual_address), C(virtual_address6), C(vrrp_id), C(members)), C(instances) (each router's
      groups, each with its own C(priority), C(address), C(address6), the other members' addresses C(peers), and on
      EC2 (the aws_ec2 inventory's C(network_interfaces)) the primary network interface ids C(interface_id) and
      C(peer_interface_ids)) and C(problems).
  type: dict
  sample:
    groups:
      routers:
        virtual_address: 192.0.2.1
        virtual_address6: 2001:db8::1
        vrrp_id: 51
        members:
          - {host: router1, priority: 200, address: 192.0.2.101, address6: 2001:db8::101}
          - {host: router2, priority: 190, address: 192.0.2.102, address6: 2001:db8::102}
    instances:
      router1:
        - {name: routers, virtual_address: 192.0.2.1, virtual_address6: 2001:db8::1, vrrp_id: 51, priority: 200,
           address: 192.0.2.101, address6: 2001:db8::101, peers: [192.0.2.102]}
    problems: []
"""

# A group name goes into keepalived's instance name and file names.
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
KEYS = ("router_group", "router_virtual_address", "router_virtual_address6", "router_vrrp_id", "router_priority")
GROUP_KEYS = {"name", "virtual_address", "virtual_address6", "vrrp_id", "priority"}
# Priority 255 belongs to the owner of the address (RFC 9568); 0 means "giving up".
FIRST_PRIORITY, PRIORITY_STEP = 200, 10


def _hostvars(hostvars, host):
    return hostvars.get(host, {}) if hasattr(hostvars, "get") else hostvars[host]


def _topology(hostvars, host):
    # Late import: the filter files are separate plugins, loaded by path in unit tests too.
    from ansible_collections.tproxy.envoy.plugins.filter.topology_addresses import topology_address, topology_address6
    return topology_address(hostvars, host), topology_address6(hostvars, host)


def _primary_interface(hostvars, host):
    """The id of the host's primary network interface (device index 0) as the aws_ec2 inventory gives it, else None."""
    facts = _hostvars(hostvars, host)
    interfaces = [i for i in (facts.get("network_interfaces") if hasattr(facts, "get") else None) or () if hasattr(i, "get")]
    primary = [i for i in interfaces if (i.get("attachment") or {}).get("device_index") == 0] or interfaces[:1]
    return primary[0].get("network_interface_id") if primary else None


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _address(value, version):
    """The address as ip prints it, or None when it is not one of this version (or has a prefix)."""
    try:
        parsed = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return str(parsed) if parsed.version == version and str(parsed) == str(value) else None


def _entries(hostvars, host, defaults):
    """The router's groups as router_groups entries: its own router_groups, or the one group of the
    single-group variables (none without router_virtual_address)."""
    facts = _hostvars(hostvars, host)
    get = facts.get if hasattr(facts, "get") else (lambda key, default=None: default)
    given = get("router_groups", None)
    if given is None and host == defaults.get("host"):
        given = defaults.get("router_groups")
    if given is not None:
        return given, "router_groups"
    own = {key: get(key, defaults.get(key)) for key in KEYS}
    if not own["router_virtual_address"]:
        return [], None
    return [{"name": own["router_group"], "virtual_address": own["router_virtual_address"],
             "virtual_address6": own["router_virtual_address6"] or "", "vrrp_id": own["router_vrrp_id"],
             "priority": own["router_priority"]}], None


def _label(source, index, key):
    """How the user wrote it: router_groups[N].key, or the single-group variable."""
    if source == "router_groups":
        return "router_groups[%d].%s" % (index, key)
    return {"name": "router_group", "vrrp_id": "router_vrrp_id"}.get(key, "router_" + key)


def _entry_problem(host, entry, index, source, address6):
    if not isinstance(entry, dict) or not {"name", "virtual_address", "vrrp_id"} <= set(entry) or set(entry) - GROUP_KEYS:
        return ("%s: router_groups[%d] must be a dict with name, virtual_address, vrrp_id and optionally virtual_address6 "
                "and priority, got %r" % (host, index, entry))
    name, vip, vip6 = entry["name"], entry["virtual_address"], entry.get("virtual_address6") or ""
    if not isinstance(name, str) or not GROUP_NAME.match(name):
        return ("%s: %s must be 1 to 32 letters, digits, '_' or '-' (starting with a letter or digit), got %r"
                % (host, _label(source, index, "name"), name))
    if _address(vip, 4) is None:
        return "%s: %s must be an IPv4 address without a prefix length, got %r" % (host, _label(source, index, "virtual_address"), vip)
    if vip6 and _address(vip6, 6) is None:
        return ("%s: %s must be an IPv6 address in compressed form without a prefix length, got %r"
                % (host, _label(source, index, "virtual_address6"), vip6))
    vrid = _int(entry["vrrp_id"])
    if vrid is None or not 1 <= vrid <= 255:
        return "%s: %s must be from 1 to 255, got %r" % (host, _label(source, index, "vrrp_id"), entry["vrrp_id"])
    priority = entry.get("priority")
    if priority not in (None, "") and (_int(priority) is None or not 0 <= _int(priority) <= 254):
        return ("%s: %s must be from 1 to 254 (255 is the address owner's), or 0 for the default by inventory order, "
                "got %r" % (host, _label(source, index, "priority"), priority))
    if vip6 and not address6:
        return ("%s: %s %s needs an IPv6 address on the router (tproxy_ipv6_address)"
                % (host, _label(source, index, "virtual_address6"), vip6))
    return None


def router_fleet(routers, hostvars, defaults):
    """See DOCUMENTATION."""
    if not isinstance(defaults, dict):
        raise AnsibleFilterError("router_fleet: defaults must be a dict, got %r" % (defaults,))
    problems, groups, instances = [], {}, {}
    taken = {}
    for host in defaults.get("hosts") or []:
        for address in _topology(hostvars, host):
            if address:
                taken[str(address)] = host
    for host in routers or []:
        entries, source = _entries(hostvars, host, defaults)
        instances[host] = []
        if not isinstance(entries, list):
            problems.append("%s: router_groups must be a list, got %r" % (host, entries))
            continue
        address, address6 = _topology(hostvars, host)
        for index, entry in enumerate(entries):
            problem = _entry_problem(host, entry, index, source, address6)
            if problem:
                problems.append(problem)
                continue
            name, vip, vip6, vrid = entry["name"], entry["virtual_address"], entry.get("virtual_address6") or "", int(entry["vrrp_id"])
            priority = _int(entry.get("priority")) or None
            group = groups.setdefault(name, {"virtual_address": vip, "virtual_address6": vip6, "vrrp_id": vrid, "members": []})
            if any(m["host"] == host for m in group["members"]):
                problems.append("%s: router_group %s is given twice" % (host, name))
                continue
            first = group["members"][0]["host"] if group["members"] else None
            for key, value in (("virtual_address", vip), ("virtual_address6", vip6), ("vrrp_id", vrid)):
                if group[key] != value:
                    problems.append("%s and %s are both in router_group %s but differ in %s (%r, %r): a group has one" % (
                        first, host, name, _label(source, index, key), group[key], value))
            group["members"].append({"host": host, "priority": priority, "address": address, "address6": address6})
            instances[host].append(name)
    seen_vrid, seen_vip = {}, {}
    for name, group in groups.items():
        for index, member in enumerate(group["members"]):
            if member["priority"] is None:
                member["priority"] = max(FIRST_PRIORITY - PRIORITY_STEP * index, 1)
        other = seen_vrid.setdefault(group["vrrp_id"], name)
        if other != name:
            problems.append("router_vrrp_id %d is used by router_group %s and %s: each group needs its own "
                            "(VRRP tells groups on one network apart by it)" % (group["vrrp_id"], other, name))
        for key, label in (("virtual_address", "router_virtual_address"), ("virtual_address6", "router_virtual_address6")):
            vip = group[key]
            if not vip:
                continue
            other = seen_vip.setdefault(vip, name)
            if other != name:
                problems.append("%s %s is used by router_group %s and %s" % (label, vip, other, name))
            if vip in taken:
                problems.append("%s %s of router_group %s is the address of host %s" % (label, vip, name, taken[vip]))
    for host, names in instances.items():
        instances[host] = [dict({k: v for k, v in groups[name].items() if k != "members"}, name=name,
                                priority=next(m["priority"] for m in groups[name]["members"] if m["host"] == host),
                                address=next(m["address"] for m in groups[name]["members"] if m["host"] == host),
                                address6=next(m["address6"] for m in groups[name]["members"] if m["host"] == host),
                                peers=[m["address"] for m in groups[name]["members"] if m["host"] != host],
                                interface_id=_primary_interface(hostvars, host),
                                peer_interface_ids=[i for i in (_primary_interface(hostvars, m["host"]) for m in groups[name]["members"]
                                                                if m["host"] != host) if i])
                           for name in names]
    return {"groups": groups, "instances": instances, "problems": problems}


def router_fleet_link(links, address, address6, virtual_addresses, virtual_addresses6=()):
    """The interface carrying ``address`` (and ``address6``) in ``ip -j addr show`` output, and a sentence for
    each virtual address outside the network of the router's own address of its family."""
    found, problems = {}, []
    for link in links or []:
        for info in link.get("addr_info") or []:
            for version, own in ((4, address), (6, address6)):
                if own and info.get("local") == own and info.get("family") == ("inet" if version == 4 else "inet6"):
                    found[version] = (link.get("ifname"), ipaddress.ip_interface("%s/%s" % (own, info.get("prefixlen"))).network)
    for version, own, vips, label in ((4, address, virtual_addresses, "virtual address"),
                                      (6, address6, virtual_addresses6, "virtual IPv6 address")):
        for vip in vips or []:
            if version not in found:
                problems.append("%s %s: the router's own address %s is on none of its interfaces" % (label, vip, own))
            elif ipaddress.ip_address(vip) not in found[version][1]:
                problems.append("%s %s must lie in the network of the router's own address %s (%s on %s): VRRP moves it "
                                "on that network" % (label, vip, own, found[version][1], found[version][0]))
    interfaces = sorted({name for name, _net in found.values()})
    if len(interfaces) > 1 and virtual_addresses6:
        problems.append("the router's own addresses %s and %s are on different interfaces (%s): the virtual addresses "
                        "move on one" % (address, address6, ", ".join(interfaces)))
    return {"interface": found[4][0] if 4 in found else None, "problems": problems}


class FilterModule:
    """tproxy.envoy fleet filters."""

    def filters(self):
        return {"router_fleet": router_fleet, "router_fleet_link": router_fleet_link}
