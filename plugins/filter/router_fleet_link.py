# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The interface a router's virtual addresses move on, from the host probe (which routers share which
virtual address is the topology model's: plugins/module_utils/topology.py)."""

from __future__ import annotations

import ipaddress


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
        return {"router_fleet_link": router_fleet_link}
