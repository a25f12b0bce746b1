# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router's plan: its settings (the router role's ``router_*`` variables) and what the host
probe read, turned into everything the role writes, as plain data.

``router_plan(settings, hostname, probe)`` returns one dict (see ``router_plan``'s docstring). The
role keeps it as a fact and its tasks only write parts of it out; the ``render`` entry point writes
the same parts to files on the controller (the golden tests and the bench read those). Nothing here
touches a host.

Controller-side code (plugin_utils, not module_utils): it calls the policy translation of
plugins/filter/router_policy.py and serialises YAML, neither of which a host needs.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import posixpath
import re

import yaml

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.tproxy.envoy.plugins.filter.router_policy import (
    router_policy_forward, router_policy_plan, router_policy_problems)
from ansible_collections.tproxy.envoy.plugins.module_utils.ports import port_number
from ansible_collections.tproxy.envoy.plugins.test.access_log_path import access_log_path

# Names the collection owns on a router (the README lists them; teardown removes exactly these).
CHAIN = "TPROXY-ENVOY"
DIVERT_CHAIN = "TPROXY-ENVOY-DIVERT"
FORWARD_CHAIN = "TPROXY-ENVOY-FWD"
REDIRECT_CHAIN = "TPROXY-ENVOY-OUT"
# router_policy for forwarded traffic (iptables backend; nftables: chains of the table).
POLICY_CHAIN = "TPROXY-ENVOY-POLICY"
NFT_TABLE = "tproxy_envoy"
NETSTATE_NAME = "router"
# TPROXY hands IPv6 connections to an IPv6 socket: the listener's second address.
PROXY_ADDRESS_IPV6 = "::1"
# Where Envoy's container sees the configuration directory (router_envoy_config_dir on the engine host).
ENVOY_DIR = "/etc/envoy"
WATCHED_HEADER = "# Ansible managed (tproxy.envoy router role): replaced on its next run."
# Container interfaces come and go; they are not the router's links (send_redirects, accept_ra).
NOT_LINKS = re.compile(r"^(lo$|docker|br-|veth)")
# Without a probe (the render entry point) the host is assumed to have iptables in both families.
ASSUMED_TOOLS = {"iptables-restore": "assumed", "ip6tables-restore": "assumed"}

MAX_MARK = 4294967295
UPGRADE_TOKEN = re.compile(r"^[!#$%&*+.^_`|~0-9A-Za-z/-]+$")
MEMORY_LIMIT = re.compile(r"^[1-9][0-9]*[kmg]?$")
NETWORK_MODE = re.compile(r"^container:[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENVOY_USER = re.compile(r"^[0-9]+(:[0-9]+)?$")

_T = "type.googleapis.com/"
LISTENER = _T + "envoy.config.listener.v3.Listener"
CLUSTER = _T + "envoy.config.cluster.v3.Cluster"
HCM = _T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY = _T + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
ROUTER = _T + "envoy.extensions.filters.http.router.v3.Router"
RBAC = _T + "envoy.extensions.filters.http.rbac.v3.RBAC"
RBAC_PER_ROUTE = _T + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
PRESERVE_CASE = {"name": "preserve_case", "typed_config": {
    "@type": _T + "envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig"}}

# What each setting changes on a running router, the role applies it that way: "watched" (lds.yaml,
# cds.yaml: Envoy applies them without a restart), "start" (Envoy's bootstrap, command line or
# container: a new process, the old one drained first), "host" (kernel settings, rules, routes:
# the netstate script and kernel_settings), "files" (files beside Envoy: logrotate). A setting may
# change several; tests/unit/plugins/plugin_utils/test_router_model.py checks this table against
# the plan itself.
EFFECTS = {
    "router_proxy_port": ("watched", "host"),
    "router_proxy_address": ("watched", "host"),
    "router_intercept_ports": ("watched", "host"),
    "router_intercept_l4_ports": ("watched", "host"),
    "router_intercept_tls_ports": ("watched", "host"),
    "router_intercept_sources": ("host",),
    "router_ipv6": ("watched", "host"),
    "router_firewall_backend": ("host",),
    "router_tproxy_mark": ("host",),
    "router_route_table": ("host",),
    "router_preserve_client_address": ("watched",),
    "router_preserve_client_address_mark": ("watched",),
    "router_forward_sources": ("host",),
    "router_rp_filter": ("host",),
    "router_send_redirects": ("host",),
    "router_access_log": ("watched", "start", "files"),
    "router_access_log_flush_seconds": ("watched",),
    "router_client_connection_limit": ("host",),
    "router_policy": ("watched", "host"),
    "router_policy_default": ("watched", "host"),
    "router_policy_mode": ("watched", "host"),
    "router_metrics_address": ("watched",),
    "router_metrics_port": ("watched",),
    "router_envoy_log_level": ("start",),
    "router_envoy_admin_address": ("start",),
    "router_envoy_admin_port": ("start",),
    "router_envoy_concurrency": ("start",),
    "router_envoy_max_downstream_connections": ("start",),
    "router_envoy_buffer_limit_bytes": ("watched",),
    "router_envoy_max_request_headers_kb": ("watched",),
    "router_envoy_upgrade_types": ("watched",),
    "router_envoy_evidence_headers": ("watched",),
    "router_envoy_dynamic_stats": ("watched",),
    "router_envoy_drain_seconds": ("start",),
    "router_envoy_container_name": ("files",),
    "router_envoy_config_dir": ("start",),
    "router_envoy_pids_limit": ("start",),
    "router_envoy_memory_limit": ("start",),
}


def _plain(value):
    """``value`` with every string, number and container as its plain Python type: what the YAML
    dumper and the digests below need (Ansible hands filters subclasses that carry its tags)."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        # str.__str__, not str(): ansible-core before 2.19 hands AnsibleUnsafeText, whose own
        # __str__ returns itself (a subclass the YAML dumper refuses).
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _int(value):
    """``value`` as Jinja's ``| int`` reads it (numbers given as -e strings count), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^\s*-?[0-9]+\s*$", value):
        return int(value)
    return None


def _bool(value):
    return boolean(value, strict=False)


def _shown(value):
    """A value as a message shows it (lists as Python prints them, strings bare)."""
    return value if isinstance(value, str) else repr(value) if isinstance(value, (list, dict)) else str(value)


def _port_list(value):
    if not isinstance(value, (list, tuple)):
        return False
    numbers = [port_number(item) for item in value]
    return None not in numbers and len(set(numbers)) == len(numbers)


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else []


def ipv4_address(value):
    if not isinstance(value, str) or "/" in value:
        return False
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def network_family(value):
    """``ipv4`` or ``ipv6`` for a network in CIDR form without host bits (IPv6 compressed), else None."""
    if not isinstance(value, str) or "/" not in value:
        return None
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return None
    if network.version == 6:
        return "ipv6" if str(network) == value else None
    return "ipv4"


def _in_range(value, low, high):
    number = _int(value)
    return number is not None and low <= number <= high


def problems(s):
    """Every problem of the settings that the argument spec cannot express, each naming its variable."""
    found = []

    def check(ok, message):
        if not ok:
            found.append(message)

    names = ("router_intercept_ports", "router_intercept_l4_ports", "router_intercept_tls_ports")
    ports = {key: _as_list(s[key]) for key in names}
    union = ports["router_intercept_ports"] + ports["router_intercept_l4_ports"] + ports["router_intercept_tls_ports"]
    proxy_port, admin_port = port_number(s["router_proxy_port"]), port_number(s["router_envoy_admin_port"])
    check(proxy_port is not None,
          "router_proxy_port must be a port from 1 to 65535, got %s" % _shown(s["router_proxy_port"]))
    check(admin_port is not None and admin_port != proxy_port,
          "router_envoy_admin_port must be a port from 1 to 65535 other than router_proxy_port, got %s"
          % _shown(s["router_envoy_admin_port"]))
    check(_port_list(s["router_intercept_ports"]) and len(union) > 0,
          "router_intercept_ports must be a list of distinct ports from 1 to 65535, and with "
          "router_intercept_l4_ports and router_intercept_tls_ports name at least one port, got %s"
          % _shown(s["router_intercept_ports"]))
    check(_port_list(s["router_intercept_l4_ports"])
          and _port_list(ports["router_intercept_ports"] + ports["router_intercept_l4_ports"]),
          "router_intercept_l4_ports must be a list of distinct ports from 1 to 65535, none of them "
          "also in router_intercept_ports, got %s" % _shown(s["router_intercept_l4_ports"]))
    check(_port_list(s["router_intercept_tls_ports"]) and _port_list(union),
          "router_intercept_tls_ports must be a list of distinct ports from 1 to 65535, none of them "
          "also in router_intercept_ports or router_intercept_l4_ports, got %s" % _shown(s["router_intercept_tls_ports"]))
    log = s["router_access_log"]
    check(log in ("stdout", "off") or access_log_path(log),
          "router_access_log must be stdout, off or an absolute file path (letters, digits, '.', '_', '-') in a "
          "directory of the log's own, which Envoy's user is given: not a system directory (/, anything under /etc, "
          "/usr, /boot, /dev, /proc, /sys, /run, /root) nor one that holds other files (/var/log, /var/lib, /tmp, "
          "/srv, /opt, a home, any directory right under /), for example /var/log/tproxy-envoy/access.log; got %s"
          % _shown(log))
    check(s["router_metrics_address"] == "" or ipv4_address(s["router_metrics_address"]),
          "router_metrics_address must be empty (no metrics listener) or an IPv4 address of the router, got %s"
          % _shown(s["router_metrics_address"]))
    metrics_port = port_number(s["router_metrics_port"])
    check(metrics_port is not None and metrics_port not in (_int(s["router_proxy_port"]), _int(s["router_envoy_admin_port"])),
          "router_metrics_port must be a port from 1 to 65535 other than router_proxy_port and router_envoy_admin_port, got %s"
          % _shown(s["router_metrics_port"]))
    policy = router_policy_problems(s["router_policy"], union)
    check(not policy, "; ".join(policy))
    check(_in_range(s["router_tproxy_mark"], 1, MAX_MARK),
          "router_tproxy_mark must be from 1 to %d (0 marks nothing), got %s" % (MAX_MARK, _shown(s["router_tproxy_mark"])))
    # The upstream mark is only in use with router_preserve_client_address.
    mark, upstream_mark = _int(s["router_tproxy_mark"]), _int(s["router_preserve_client_address_mark"])
    check(not _bool(s["router_preserve_client_address"])
          or (_in_range(upstream_mark, 1, MAX_MARK) and mark is not None and mark >= 0 and mark & upstream_mark == 0),
          "router_preserve_client_address_mark must be from 1 to %d and share no bit with router_tproxy_mark (%s), got %s"
          % (MAX_MARK, _shown(s["router_tproxy_mark"]), _shown(s["router_preserve_client_address_mark"])))
    table = _int(s["router_route_table"])
    check(table is not None and 1 <= table <= MAX_MARK and table not in (253, 254, 255),
          "router_route_table must be from 1 to %d and not a reserved table (0 unspec, 253 default, 254 main, 255 local), got %s"
          % (MAX_MARK, _shown(s["router_route_table"])))
    check((_int(s["router_envoy_concurrency"]) or 0) >= 0,
          "router_envoy_concurrency must be 0 (one worker per CPU) or more, got %s" % _shown(s["router_envoy_concurrency"]))
    check((_int(s["router_envoy_max_downstream_connections"]) or 0) >= 1,
          "router_envoy_max_downstream_connections must be 1 or more, got %s" % _shown(s["router_envoy_max_downstream_connections"]))
    check(_in_range(s["router_envoy_max_request_headers_kb"], 1, 8192),
          "router_envoy_max_request_headers_kb must be from 1 to 8192, got %s" % _shown(s["router_envoy_max_request_headers_kb"]))
    check(all(isinstance(u, str) and UPGRADE_TOKEN.match(u) for u in _as_list(s["router_envoy_upgrade_types"])),
          "router_envoy_upgrade_types must be HTTP Upgrade tokens (for example websocket), got %s" % _shown(s["router_envoy_upgrade_types"]))
    check(_in_range(s["router_envoy_buffer_limit_bytes"], 1024, 1073741824),
          "router_envoy_buffer_limit_bytes must be from 1024 to 1073741824, got %s" % _shown(s["router_envoy_buffer_limit_bytes"]))
    check(ipv4_address(s["router_proxy_address"]),
          "router_proxy_address must be an IPv4 address, got %s" % _shown(s["router_proxy_address"]))
    # The admin interface can stop Envoy and read its configuration: never on an address others reach.
    admin = s["router_envoy_admin_address"]
    check(ipv4_address(admin) and admin.startswith("127."),
          "router_envoy_admin_address must be a loopback address (127.0.0.0/8): Envoy's admin interface can stop "
          "Envoy and read its configuration, so it never listens where clients reach it (for metrics use "
          "router_metrics_address); got %s" % _shown(admin))
    for name in ("router_intercept_sources", "router_forward_sources"):
        check(all(network_family(n) for n in _as_list(s[name])),
              "%s must be IPv4 or IPv6 networks in CIDR form without host bits (a.b.c.d/n, "
              "2001:db8::/n in compressed form), got %s" % (name, _shown(s[name])))
    mode = s["router_envoy_network_mode"]
    check(mode == "host" or (isinstance(mode, str) and NETWORK_MODE.match(mode) is not None),
          "router_envoy_network_mode must be 'host' or 'container:NAME', got %s" % _shown(mode))
    check(_in_range(s["router_access_log_flush_seconds"], 1, 86400),
          "router_access_log_flush_seconds must be from 1 to 86400, got %s" % _shown(s["router_access_log_flush_seconds"]))
    limit = _int(s["router_client_connection_limit"])
    check(limit is not None and limit >= 0,
          "router_client_connection_limit must be 0 (no limit) or more, got %s" % _shown(s["router_client_connection_limit"]))
    pids = _int(s["router_envoy_pids_limit"])
    check(pids is not None and pids >= 64,
          "router_envoy_pids_limit must be 64 or more (Envoy's threads count), got %s" % _shown(s["router_envoy_pids_limit"]))
    memory = s["router_envoy_memory_limit"]
    check(not isinstance(memory, bool) and MEMORY_LIMIT.match(str(memory)) is not None,
          "router_envoy_memory_limit must be a size such as 512m or 2g, got %s" % _shown(memory))
    user = s["router_envoy_user"]
    check(isinstance(user, str) and ENVOY_USER.match(user) is not None,
          "router_envoy_user must be numeric uid[:gid], got %s" % _shown(user))
    found.extend(_fleet_problems(s))
    return found


def _fleet_problems(s):
    """The router's own fleet settings; the groups across routers are the topology model's
    (plugins/module_utils/topology.py), which refuses an inconsistent fleet itself."""
    advert = s["router_vrrp_advert_interval"]
    try:
        ok = not isinstance(advert, bool) and 0.01 <= float(advert) <= 40.95
    except (TypeError, ValueError):
        ok = False
    # keepalived's advert_int: hundredths of a second, 12 bits.
    return [] if ok else ["router_vrrp_advert_interval must be from 0.01 to 40.95 seconds, got %s" % _shown(advert)]


# --- host: kernel, firewall tools, sysctls, rules --------------------------------------------------

def _host(s, probe):
    tools = probe.get("tools", ASSUMED_TOOLS) if probe else ASSUMED_TOOLS
    has = {name for name, path in tools.items() if path}
    ipv6 = _bool(s["router_ipv6"])
    backend = s["router_firewall_backend"]
    if backend == "auto":
        backend = "iptables" if "iptables-restore" in has else "nftables"
    families = ["ipv4"] + (["ipv6"] if ipv6 else [])
    seen = (probe or {}).get("tproxy_kernel")
    # The probe ran the same check without loading anything: when nothing is left to load for this
    # backend and these families, kernel.yml has nothing to do.
    kernel_load = (not seen or not seen.get("supported") or bool(seen.get("loadable"))
                   or seen.get("backend") != backend or list(seen.get("families", [])) != families)
    return {"ipv6": ipv6, "families": families, "backend": backend,
            "has_iptables": "iptables-restore" in has, "has_ip6tables": "ip6tables-restore" in has,
            "kernel": {"backend": backend, "families": families, "load": kernel_load}}


def _sysctls(s, host, probe):
    base = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": _int(s["router_rp_filter"])}
    if host["ipv6"]:
        base["net.ipv6.conf.all.forwarding"] = 1
    # A redirect is sent if "all" or the interface allows it: every link the probe found is set.
    links = sorted(link for link in (probe or {}).get("links", []) if not NOT_LINKS.match(link))
    every = dict(base)
    for link in ["all", "default"] + links:
        every["net.ipv4.conf.%s.send_redirects" % link] = int(_bool(s["router_send_redirects"]))
    # With IPv6 forwarding on, a link ignores router advertisements unless accept_ra is 2, and a
    # default route learnt from them (EC2's IPv6 default route) vanishes when it expires.
    if host["ipv6"]:
        for link in ["default"] + links:
            every["net.ipv6.conf.%s.accept_ra" % link] = 2
    return base, every


def _intercept_matches(sources, family):
    """The source networks of ``family`` that interception is limited to; [None]: any source.
    Sources given, none of this family: no interception of it."""
    if not sources:
        return [None]
    return [n for n in sources if network_family(n) == family]


IPTABLES_HEAD = ("# {tool}-restore --noflush input ({tool}-save form): declaring a chain\n"
                 "# flushes and refills it in one commit, so a change never leaves a gap.")


def _iptables_rules(family, s, ports, host, mark, drop_redirects, policy):
    v6 = family == "ipv6"
    limit = _int(s["router_client_connection_limit"])
    on_ip = PROXY_ADDRESS_IPV6 if v6 else s["router_proxy_address"]
    lines = [IPTABLES_HEAD.format(tool="ip6tables" if v6 else "iptables")]
    if host["backend"] == "iptables":
        lines += [
            "*mangle", ":%s - [0:0]" % CHAIN, ":%s - [0:0]" % DIVERT_CHAIN,
            '-A %s -p tcp -m socket --transparent -m comment --comment "tproxy.envoy: packets of connections Envoy holds" -j %s'
            % (CHAIN, DIVERT_CHAIN),
            '-A %s -m addrtype --dst-type LOCAL -m comment --comment "tproxy.envoy: traffic to the router itself is never '
            'intercepted" -j RETURN' % CHAIN]
        if limit > 0:
            lines.append('-A %s -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above %d '
                         '--connlimit-mask %d --connlimit-saddr -m comment --comment "tproxy.envoy: at most %d connections '
                         'per client (router_client_connection_limit)" -j DROP' % (CHAIN, limit, 128 if v6 else 32, limit))
        for source in _intercept_matches(s["router_intercept_sources"], family):
            for port in ports["all"]:
                lines.append('-A %s%s -p tcp -m tcp --dport %d -m comment --comment "tproxy.envoy: intercept port %d" '
                             '-j TPROXY --on-port %d --on-ip %s --tproxy-mark %s'
                             % (CHAIN, " -s %s" % source if source else "", port, port, ports["proxy"], on_ip, mark))
        lines += ['-A %s -m comment --comment "tproxy.envoy: route to the local socket" -j MARK --set-xmark %s' % (DIVERT_CHAIN, mark),
                  '-A %s -m comment --comment "tproxy.envoy: deliver" -j ACCEPT' % DIVERT_CHAIN, "COMMIT"]
    lines += ["*filter", ":%s - [0:0]" % FORWARD_CHAIN]
    if drop_redirects:
        lines.append(":%s - [0:0]" % REDIRECT_CHAIN)
    # router_policy for forwarded traffic: the forward sources' traffic goes through its chain
    # (plugins/filter/router_policy.py).
    policed = host["backend"] == "iptables" and policy["forward"]
    if policed:
        lines.append(":%s - [0:0]" % POLICY_CHAIN)
    for source in s["router_forward_sources"]:
        if network_family(source) == family:
            lines += ['-A %s -s %s -m comment --comment "tproxy.envoy: %s for %s" -j %s'
                      % (FORWARD_CHAIN, source, "router_policy" if policed else "forward", source,
                         POLICY_CHAIN if policed else "ACCEPT"),
                      '-A %s -d %s -m comment --comment "tproxy.envoy: forward to %s" -j ACCEPT' % (FORWARD_CHAIN, source, source)]
    if policy["forward_drop_rest"]:
        lines.append('-A %s -m comment --comment "tproxy.envoy: router_policy_default deny: nothing else is forwarded" -j DROP'
                     % FORWARD_CHAIN)
    if policed:
        lines += router_policy_forward(s["router_policy"], s["router_policy_default"], s["router_policy_mode"],
                                       "iptables", family, POLICY_CHAIN)
    if drop_redirects:
        lines.append('-A %s -p ipv6-icmp -m icmp6 --icmpv6-type 137 -m comment --comment "tproxy.envoy: no redirects to the '
                     'clients (router_send_redirects false)" -j DROP' % REDIRECT_CHAIN)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


NFT_HEAD = """# nft -f input (checked first with nft -c): the table is declared, so that deleting it cannot fail on
# the first run, deleted and made anew in one transaction. A change never leaves a moment without
# interception, nor half a rule set; other tables are never touched."""


def _nft_rules(s, ports, host, drop_redirects6, policy):
    mark = "0x%08x" % _int(s["router_tproxy_mark"])
    limit = _int(s["router_client_connection_limit"])
    families = [("ip", s["router_proxy_address"], "ipv4")]
    if host["ipv6"]:
        families.append(("ip6", "[%s]" % PROXY_ADDRESS_IPV6, "ipv6"))
    matches = []
    for keyword, target, family in families:
        sources = _intercept_matches(s["router_intercept_sources"], family)
        matches.append((keyword, target, ["%s saddr %s" % (keyword, n) if n else "meta nfproto %s" % family for n in sources]))
    lines = [NFT_HEAD, "table inet %s {}" % NFT_TABLE, "delete table inet %s" % NFT_TABLE, "table inet %s {" % NFT_TABLE]
    if limit > 0:
        for _keyword, _target, family in families:
            lines += ["\t# Each client's open connections (router_client_connection_limit).",
                      "\tset clients_%s { type %s_addr; size 65535; flags dynamic; }" % (family, family)]
    lines += ["\tchain prerouting {", "\t\ttype filter hook prerouting priority mangle; policy accept;",
              '\t\tmeta l4proto tcp socket transparent 1 meta mark set meta mark | %s accept comment '
              '"tproxy.envoy: packets of connections Envoy holds"' % mark,
              '\t\tfib daddr type local return comment "tproxy.envoy: traffic to the router itself is never intercepted"']
    if limit > 0:
        for keyword, _target, family in families:
            lines.append('\t\ttcp flags & (fin | syn | rst | ack) == syn add @clients_%s { %s saddr ct count over %d } drop '
                         'comment "tproxy.envoy: at most %d connections per client"' % (family, keyword, limit, limit))
    for keyword, target, family_matches in matches:
        for match in family_matches:
            for port in ports["all"]:
                lines.append('\t\t%s tcp dport %d tproxy %s to %s:%d meta mark set meta mark | %s accept comment '
                             '"tproxy.envoy: intercept port %d"' % (match, port, keyword, target, ports["proxy"], mark, port))
    lines += ["\t\t# nftables' tproxy falls through when no socket listens (iptables' TPROXY drops): while Envoy",
              "\t\t# does not serve, the same connections are dropped here (router_failure_mode closed)."]
    for _keyword, _target, family_matches in matches:
        for match in family_matches:
            lines.append('\t\t%s tcp dport { %s } drop comment "tproxy.envoy: no Envoy to take it (router_failure_mode closed)"'
                         % (match, ", ".join(str(p) for p in ports["all"])))
    lines.append("\t}")
    if policy["forward"]:
        # router_policy for forwarded traffic; the rest is dropped here only where no iptables FORWARD does it.
        lines += ["\t" + line if line else line for line in router_policy_forward(
            s["router_policy"], s["router_policy_default"], s["router_policy_mode"], "nftables",
            sources=s["router_forward_sources"], drop_rest=policy["forward_drop_rest"] and not host["has_iptables"])]
    if drop_redirects6:
        lines += ["\t# IPv6 has no send_redirects setting (router_send_redirects false).", "\tchain output {",
                  "\t\ttype filter hook output priority filter; policy accept;",
                  '\t\ticmpv6 type nd-redirect drop comment "tproxy.envoy: no redirects to the clients (router_send_redirects false)"',
                  "\t}"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _netstate(s, ports, host, managed, policy):
    mark = "0x%x/0x%x" % (_int(s["router_tproxy_mark"]), _int(s["router_tproxy_mark"]))
    table = _int(s["router_route_table"])
    iptables = host["backend"] == "iptables"
    interception = [{"table": "mangle", "chain": CHAIN, "jump_from": "PREROUTING"}, {"table": "mangle", "chain": DIVERT_CHAIN}]
    # Last in FORWARD, after Docker's chains (DOCKER-USER) and every rule of the operator: the
    # clients' ACCEPT only takes what would otherwise meet the chain's policy, never what a foreign
    # rule drops. The PREROUTING jump goes first: interception must see every packet.
    forward = [{"table": "filter", "chain": FORWARD_CHAIN, "jump_from": "FORWARD", "jump_position": "last"}]
    if iptables and policy["forward"]:
        forward.append({"table": "filter", "chain": POLICY_CHAIN})
    # IPv6 has no send_redirects setting: a forwarded packet whose next hop shares its link makes
    # the kernel send an ICMPv6 redirect, and the client then bypasses the router for that
    # destination, every port. With router_send_redirects false they are dropped on their way out.
    drop_redirects6 = host["ipv6"] and not _bool(s["router_send_redirects"])
    redirect = [{"table": "filter", "chain": REDIRECT_CHAIN, "jump_from": "OUTPUT"}]
    chains4 = (interception if iptables else []) + (forward if host["has_iptables"] else [])
    chains6 = []
    if host["ipv6"]:
        chains6 = ((interception + (redirect if drop_redirects6 else [])) if iptables else []) \
            + (forward if host["has_ip6tables"] else [])
    policy_rules = ["fwmark %s lookup %d" % (mark, table)]
    routes = [{"dest": "0.0.0.0/0", "table": table, "type": "local", "dev": "lo"}]
    if host["ipv6"]:
        routes.append({"dest": "::/0", "table": table, "type": "local", "dev": "lo"})
    return {
        "netstate_name": NETSTATE_NAME,
        # Interception in iptables chains or in an nftables table; the forwarding acceptance in
        # iptables wherever the host has it (the README's router_firewall_backend says why).
        "netstate_iptables": chains4,
        "netstate_iptables_rules": _managed(managed, _iptables_rules("ipv4", s, ports, host, mark, False, policy)),
        "netstate_ip6tables": chains6,
        "netstate_ip6tables_rules": _managed(managed, _iptables_rules("ipv6", s, ports, host, mark, drop_redirects6 and iptables, policy))
        if chains6 else "",
        "netstate_nftables": [] if iptables else [{"family": "inet", "table": NFT_TABLE}],
        "netstate_nftables_rules": "" if iptables else _managed(managed, _nft_rules(s, ports, host, drop_redirects6, policy)),
        "netstate_ip_rules": policy_rules,
        "netstate_ip6_rules": policy_rules if host["ipv6"] else [],
        "netstate_routes": routes,
        # Installed before Docker starts Envoy: router_failure_mode closed at boot.
        "netstate_boot_early": True,
    }


# --- Envoy ---------------------------------------------------------------------------------------

def _socket_address(address, port):
    return {"socket_address": {"address": address, "port_value": port}}


def _typed(name, type_url, **config):
    return {"name": name, "typed_config": dict({"@type": type_url}, **config)}


def _access_log(s, mode, decision, rule, details, refused=False):
    """The access log keys of a connection manager or TCP proxy (README: the access log): one JSON
    line per HTTP request or L4/TLS connection, and one while a long one lasts; {} when off. The
    client is the socket's peer, never a header; every field a client chooses has a bound (Envoy's
    :N truncation). With ``refused``, a second logger takes the requests the policy never saw (the
    RBAC filter left no result: refused by Envoy before its filters, such as no Host or an Upgrade
    not allowed)."""
    log = s["router_access_log"]
    if log == "off":
        return {}
    loggers = [(decision, rule, True)] + ([("denied", "refused", False)] if refused else [])
    entries = []
    for logger_decision, logger_rule, found in loggers:
        fields = {
            "time": "%START_TIME%", "mode": mode, "event": "%ACCESS_LOG_TYPE%",
            "client_address": "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%",
            "client_port": "%DOWNSTREAM_DIRECT_REMOTE_PORT%",
            "destination_address": "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "destination_port": "%DOWNSTREAM_LOCAL_PORT%",
            "method": "%REQ(:METHOD):32%" if mode == "http" else None,
            "host": "%REQ(:AUTHORITY):256%" if mode == "http" else None,
            "path": "%REQ(:PATH):2048%" if mode == "http" else None,
            "sni": "%REQUESTED_SERVER_NAME%" if mode == "tls" else None,
            "status": "%RESPONSE_CODE%" if mode == "http" else None,
            "details": details, "upstream": "%UPSTREAM_HOST%", "bytes_received": "%BYTES_RECEIVED%",
            "bytes_sent": "%BYTES_SENT%", "duration_ms": "%DURATION%", "response_flags": "%RESPONSE_FLAGS%",
            "policy_decision": logger_decision, "policy_rule": logger_rule, "policy_mode": s["router_policy_mode"],
        }
        if log == "stdout":
            entry = _typed("envoy.access_loggers.stdout", _T + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                           log_format={"json_format": fields})
        else:
            entry = _typed("envoy.access_loggers.file", _T + "envoy.extensions.access_loggers.file.v3.FileAccessLog",
                           path=log, log_format={"json_format": fields})
        if refused:
            entry = {"name": entry["name"], "filter": {"metadata_filter": {
                "matcher": {"filter": "envoy.filters.http.rbac", "path": [{"key": "shadow_engine_result"}],
                            "value": {"present_match": True} if found else {"null_match": {}}},
                "match_if_key_not_found": not found}}, "typed_config": entry["typed_config"]}
        entries.append(entry)
    # A long connection or stream is logged while it lasts too, not only when it ends (event says which).
    return {"access_log": entries,
            "access_log_options": {"access_log_flush_interval": "%ds" % _int(s["router_access_log_flush_seconds"])}}


def _http_chain(s, port, policy):
    """The HTTP connection manager of one port. Transparent (README: what Envoy does to traffic):
    the server and the client see what the direct path carries. No request id, no x-envoy-*
    headers, the server's own Server header, header names in their original case both ways,
    HTTP/1.0 and upgrades passed on, 100-continue from the server, no route timeout."""
    # Envoy always sets X-Forwarded-Proto. One trusted hop keeps a client's own value; a request
    # that came without one is routed to a route that removes Envoy's.
    routes = [
        {"match": {"prefix": "/", "headers": [{"name": "x-tproxy-envoy-client-xfp", "present_match": False}]},
         "route": {"cluster": "original_destination", "timeout": "0s"}, "request_headers_to_remove": ["x-forwarded-proto"]},
        {"match": {"prefix": "/"}, "route": {"cluster": "original_destination", "timeout": "0s"},
         "request_headers_to_remove": ["x-tproxy-envoy-client-xfp"]},
    ]
    enforce = policy["active"] and s["router_policy_mode"] == "enforce"
    port_policy = policy["http"].get(port)
    route_config = {"name": "original_destination", "virtual_hosts": []}
    if port_policy:
        # router_policy by name: Envoy picks the virtual host of a Host by hash (the exact name),
        # then by its longest wildcard suffix, else the catch-all; each name's virtual host carries
        # the RBAC matcher of the few rules that can match it. Hosts compare without their port
        # (an empty one too) and in any case; a trailing dot is among each virtual host's domains.
        route_config["ignore_port_in_host_matching"] = True
        for entry in port_policy["virtual_hosts"]:
            route_config["virtual_hosts"].append({
                # The same routes object: the YAML names it once and refers to it (an alias).
                "name": entry["name"], "domains": entry["domains"], "routes": routes,
                "typed_per_filter_config": {"envoy.filters.http.rbac": {
                    "@type": RBAC_PER_ROUTE, "rbac": _rbac(entry["rbac"], enforce)}}})
    route_config["virtual_hosts"].append({"name": "any", "domains": ["*"], "routes": routes})
    if _bool(s["router_envoy_evidence_headers"]):
        # Opt-in evidence of the hop (router_envoy_evidence_headers): what Envoy saw.
        route_config["request_headers_to_add"] = [
            {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for key, value in (("x-request-downstream-local", "%DOWNSTREAM_LOCAL_ADDRESS%"),
                               ("x-request-downstream-remote", "%DOWNSTREAM_REMOTE_ADDRESS%"),
                               ("x-request-start-time", "%START_TIME%"))]
    hcm = {
        "@type": HCM, "stat_prefix": "tproxy_%d" % port,
        "generate_request_id": False, "server_header_transformation": "PASS_THROUGH", "proxy_100_continue": True,
        "max_request_headers_kb": _int(s["router_envoy_max_request_headers_kb"]),
        "http_protocol_options": {"accept_http_10": True, "header_key_format": {"stateful_formatter": copy.deepcopy(PRESERVE_CASE)}},
        "upgrade_configs": [{"upgrade_type": u} for u in s["router_envoy_upgrade_types"]],
        "xff_num_trusted_hops": 1,
        "early_header_mutation_extensions": [_typed(
            "envoy.http.early_header_mutation.header_mutation",
            _T + "envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
            mutations=[{"append": {"header": {"key": "x-tproxy-envoy-client-xfp", "value": "%REQ(x-forwarded-proto)%"},
                                   "append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "keep_empty_value": False}}])],
        # No route timeout: a proxy the client does not know about must not cut long requests
        # that a direct connection would allow.
        "route_config": route_config,
    }
    if enforce:
        # A request the policy denies gets 403 from Envoy with a body that names the policy.
        hcm["local_reply_config"] = {"mappers": [{
            "filter": {"and_filter": {"filters": [
                {"status_code_filter": {"comparison": {"op": "EQ", "value": {"default_value": 403,
                                                                             "runtime_key": "tproxy_envoy.policy_status"}}}},
                {"metadata_filter": {"matcher": {"filter": "envoy.filters.http.rbac", "path": [{"key": "shadow_engine_result"}],
                                                 "value": {"string_match": {"exact": "denied"}}}}}]}},
            "body_format_override": {
                "text_format_source": {"inline_string": "Forbidden by the router's policy (router_policy): %RESPONSE_CODE_DETAILS%\n"},
                "content_type": "text/plain"}}]}
    log = _access_log(
        s, "http",
        "%DYNAMIC_METADATA(envoy.filters.http.rbac:shadow_engine_result)%" if policy["active"] else "allowed",
        "%DYNAMIC_METADATA(envoy.filters.http.rbac:shadow_effective_policy_id)%" if policy["active"] else "default",
        "%RESPONSE_CODE_DETAILS%", refused=policy["active"])
    hcm.update(log)
    filters = []
    if policy["active"]:
        # The catch-all virtual host's rules (those naming no hosts, then the default); a name's
        # virtual host replaces them with its own.
        filters.append({"name": "envoy.filters.http.rbac",
                        "typed_config": dict({"@type": RBAC}, **_rbac(port_policy["rbac"], enforce))})
    filters.append(_typed("envoy.filters.http.router", ROUTER, suppress_envoy_headers=True,
                          dynamic_stats=_bool(s["router_envoy_dynamic_stats"])))
    hcm["http_filters"] = filters
    return [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]


def _rbac(matcher, enforce):
    """The RBAC filter's matchers for one policy matcher. The shadow matcher is the same policy in
    both modes: its result and rule are what the access log reports; in enforce mode the matcher
    also denies. Each is evaluated once per request, over the rules of the request's name only."""
    rbac = {"matcher": matcher} if enforce else {}
    rbac["shadow_matcher"] = matcher
    return rbac


def _tcp_chain(s, chain):
    if chain["deny"]:
        # Denied by router_policy: a cluster without hosts, so Envoy closes the connection at once
        # and never connects to the destination.
        proxy = {"@type": TCP_PROXY, "stat_prefix": "tproxy_%s_%d_denied" % (chain["mode"], chain["port"]),
                 "cluster": "policy_denied"}
        details = "denied by router_policy"
    else:
        proxy = {"@type": TCP_PROXY, "stat_prefix": "tproxy_%s_%d" % (chain["mode"], chain["port"]),
                 "cluster": "original_destination"}
        details = "%CONNECTION_TERMINATION_DETAILS%"
    proxy.update(_access_log(s, chain["mode"], chain["decision"], chain["rule"], details))
    return [{"name": "envoy.filters.network.tcp_proxy", "typed_config": proxy}]


def _tproxy_listener(s, ports, host, policy):
    """TPROXY delivers each intercepted connection to this listener without rewriting it, so the
    accepted socket's local address is where the client was going; original_dst restores it and
    the ORIGINAL_DST cluster connects there."""
    listener = {"@type": LISTENER, "name": "tproxy", "address": _socket_address(s["router_proxy_address"], ports["proxy"])}
    if host["ipv6"]:
        listener["additional_addresses"] = [{"address": _socket_address(PROXY_ADDRESS_IPV6, ports["proxy"])}]
    listener["transparent"] = True
    listener["per_connection_buffer_limit_bytes"] = _int(s["router_envoy_buffer_limit_bytes"])
    filters = [_typed("envoy.filters.listener.original_dst", _T + "envoy.extensions.filters.listener.original_dst.v3.OriginalDst")]
    if _bool(s["router_preserve_client_address"]):
        # The upstream connection binds to the client's address (IP_TRANSPARENT, NET_ADMIN): the
        # server sees the client. Its replies reach the router by the web server's return route,
        # and the socket match in the router's mangle chain delivers them to this socket.
        filters.append(_typed("envoy.filters.listener.original_src",
                              _T + "envoy.extensions.filters.listener.original_src.v3.OriginalSrc",
                              mark=_int(s["router_preserve_client_address_mark"])))
    if ports["tls"]:
        # Reads the SNI of a TLS ClientHello without consuming it, on the TLS ports only: on any
        # other port (a server-first protocol) it would wait for a ClientHello that never comes.
        ranges = [{"destination_port_range": {"start": p, "end": p + 1}} for p in ports["tls"]]
        inspector = _typed("envoy.filters.listener.tls_inspector", _T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector")
        inspector["filter_disabled"] = {"not_match": ranges[0] if len(ranges) == 1 else {"or_match": {"rules": ranges}}}
        filters.append(inspector)
    listener["listener_filters"] = filters
    # The filter chain of each connection is chosen when it is accepted, by its original
    # destination port; with a router_policy, on L4 and TLS ports, then by its destination network,
    # SNI (exact by hash, then the longest wildcard) and source network, each chain decided by the
    # policy's first matching rule (plugins/filter/router_policy.py). A connection to a port that
    # is not intercepted (someone dialling the listener itself) matches nothing and is closed:
    # Envoy never connects to itself.
    chains = []
    for chain in policy["chains"]:
        entry = {"name": chain["name"], "filter_chain_match": chain["match"]}
        entry["filters"] = _http_chain(s, chain["port"], policy) if chain["mode"] == "http" else _tcp_chain(s, chain)
        chains.append(entry)
    listener["filter_chains"] = chains
    return listener


def _metrics_listener(s):
    """Envoy's statistics in Prometheus text format, and nothing else of the admin interface,
    which stays on its own address (router_envoy_admin_address)."""
    routes = [
        # The whole :path, query included: the admin handler's options (?filter=, ?usedonly,
        # ?histogram_buckets=) are not the clients' to choose.
        {"match": {"path": "/stats/prometheus", "headers": [{"name": ":method", "string_match": {"exact": "GET"}},
                                                            {"name": ":path", "string_match": {"exact": "/stats/prometheus"}}]},
         "route": {"cluster": "envoy_admin"}},
        {"match": {"prefix": "/"},
         "direct_response": {"status": 404, "body": {"inline_string": "Only GET /stats/prometheus, without a query, is served here.\n"}}},
    ]
    hcm = {"@type": HCM, "stat_prefix": "metrics",
           "route_config": {"name": "metrics", "virtual_hosts": [{"name": "metrics", "domains": ["*"], "routes": routes}]},
           "http_filters": [_typed("envoy.filters.http.router", ROUTER, suppress_envoy_headers=True)]}
    return {"@type": LISTENER, "name": "metrics",
            "address": _socket_address(s["router_metrics_address"], _int(s["router_metrics_port"])),
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}


def _start_clusters(s):
    """The clusters a listener may name that depend on nothing Envoy watches: in the bootstrap,
    always. Envoy applies lds.yaml and cds.yaml one after the other, in no set order: a listener
    that turns up (the metrics one, a denying chain) must find its cluster already there."""
    return [
        # Where the connections router_policy denies on L4 and TLS ports go: nowhere. Without
        # hosts, Envoy closes such a connection as soon as it is accepted.
        {"name": "policy_denied", "type": "STATIC", "connect_timeout": "1s"},
        # The admin interface, for the metrics listener's one route (GET /stats/prometheus).
        {"name": "envoy_admin", "type": "STATIC", "connect_timeout": "1s",
         "load_assignment": {"cluster_name": "envoy_admin", "endpoints": [{"lb_endpoints": [{"endpoint": {
             "address": _socket_address(s["router_envoy_admin_address"], _int(s["router_envoy_admin_port"]))}}]}]}},
    ]


def _clusters(s):
    upstream_http = {"@type": _T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                     "explicit_http_config": {"http_protocol_options": {
                         "header_key_format": {"stateful_formatter": copy.deepcopy(PRESERVE_CASE)}}}}
    if _bool(s["router_envoy_evidence_headers"]):
        # The upstream address is only known once a host is picked, so this evidence header is
        # added by an upstream filter, not by the route.
        upstream_http["http_filters"] = [
            _typed("envoy.filters.http.header_mutation", _T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                   mutations={"request_mutations": [{"append": {
                       "header": {"key": "x-request-upstream-remote", "value": "%UPSTREAM_HOST%"},
                       "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}]}),
            _typed("envoy.filters.http.upstream_codec", _T + "envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec")]
    # Wherever each intercepted connection was going.
    clusters = [{"@type": CLUSTER, "name": "original_destination", "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
                 "connect_timeout": "5s", "per_connection_buffer_limit_bytes": _int(s["router_envoy_buffer_limit_bytes"]),
                 "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": upstream_http}}]
    return clusters


BOOTSTRAP_HEAD = """# Envoy v3 bootstrap for the transparent proxy: what the process reads once at
# start. The listeners and clusters live in lds.yaml and cds.yaml beside it,
# which Envoy watches: the role replaces them by an atomic rename and Envoy
# applies them without a restart, draining only what changed."""


def _bootstrap(s, hostname):
    """What Envoy reads once at start. The listeners and clusters live in lds.yaml and cds.yaml
    beside it, which Envoy watches: the role replaces them by an atomic rename and Envoy applies
    them without a restart, draining only what changed."""
    def watched(name):
        return {"resource_api_version": "V3", "path_config_source": {
            "path": "%s/%s" % (ENVOY_DIR, name), "watched_directory": {"path": ENVOY_DIR}}}
    return {
        "node": {"id": hostname, "cluster": "tproxy.envoy"},
        "admin": {"address": _socket_address(s["router_envoy_admin_address"], _int(s["router_envoy_admin_port"]))},
        "overload_manager": {"resource_monitors": [_typed(
            "envoy.resource_monitors.global_downstream_max_connections",
            _T + "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            max_active_downstream_connections=_int(s["router_envoy_max_downstream_connections"]))]},
        "static_resources": {"clusters": _start_clusters(s)},
        "dynamic_resources": {"lds_config": watched("lds.yaml"), "cds_config": watched("cds.yaml")},
    }


def static_config(bootstrap, listeners, clusters):
    """The whole configuration as one static file: what ``envoy --mode validate`` checks before
    any watched file is replaced (validation mode does not read file-based resources). Static
    resources carry no "@type"."""
    def bare(resources):
        return [{k: v for k, v in r.items() if k != "@type"} for r in resources]
    static = {k: v for k, v in bootstrap.items() if k != "dynamic_resources"}
    own = bootstrap.get("static_resources", {})
    static["static_resources"] = {"listeners": bare(listeners) + own.get("listeners", []),
                                  "clusters": bare(clusters) + own.get("clusters", [])}
    return static


def digest(resources):
    """A discovery response's version: a digest of its resources, so that Envoy's reported
    version_text tells applied from rejected."""
    return hashlib.sha256(json.dumps(resources, sort_keys=True).encode("utf-8")).hexdigest()[:16]


# libyaml's emitter where the controller has it (Python's writes the same text, ten times slower).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_yaml(data):
    return yaml.dump(data, Dumper=_DUMPER, default_flow_style=False, sort_keys=False, indent=2, width=200,
                     allow_unicode=True)


def _watched_file(resources):
    return "%s\n%s" % (WATCHED_HEADER, to_yaml({"version_info": digest(resources), "resources": resources}))


def _envoy_args(s):
    args = ["-c", "%s/envoy.yaml" % ENVOY_DIR, "--log-level", s["router_envoy_log_level"],
            "--drain-time-s", str(_int(s["router_envoy_drain_seconds"])), "--drain-strategy", "immediate"]
    if (_int(s["router_envoy_concurrency"]) or 0) > 0:
        args += ["--concurrency", str(_int(s["router_envoy_concurrency"]))]
    return args


def _logrotate(s):
    # Envoy keeps writing to the file it opened; on SIGUSR1 it reopens its access logs by path.
    return """# Ansible managed (tproxy.envoy router role): Envoy's access log (router_access_log).
%s {
    daily
    rotate 14
    maxsize 100M
    compress
    delaycompress
    missingok
    notifempty
    sharedscripts
    postrotate
        docker kill --signal USR1 %s >/dev/null 2>&1 || true
    endscript
}
""" % (s["router_access_log"], s["router_envoy_container_name"])


def _envoy(s, hostname, ports, host, managed, policy):
    listeners = [_tproxy_listener(s, ports, host, policy)]
    if s["router_metrics_address"]:
        listeners.append(_metrics_listener(s))
    clusters = _clusters(s)
    bootstrap = _bootstrap(s, hostname)
    log = s["router_access_log"]
    # A file access log: its directory is mounted into the container at the same path (logrotate
    # and Envoy see one file).
    log_dir = posixpath.dirname(log) if log not in ("stdout", "off") else ""
    # A directory, not single files: Envoy sees the role's renames of lds.yaml and cds.yaml (a
    # single-file bind mount would keep the old inode).
    mounts = [{"type": "bind", "source": s["router_envoy_config_dir"], "target": ENVOY_DIR, "read_only": True}]
    if log_dir:
        mounts.append({"type": "bind", "source": log_dir, "target": log_dir, "read_only": False})
    return {
        "policy": policy,
        "listeners": listeners,
        "clusters": clusters,
        "versions": {"lds": digest(listeners), "cds": digest(clusters)},
        "bootstrap": bootstrap,
        "bootstrap_yaml": _managed(managed, BOOTSTRAP_HEAD + "\n" + to_yaml(bootstrap)),
        "static_yaml": to_yaml(static_config(bootstrap, listeners, clusters)),
        # Clusters first, so that a listener never names a missing cluster.
        "watched": {"cds.yaml": _watched_file(clusters), "lds.yaml": _watched_file(listeners)},
        "args": _envoy_args(s),
        "mounts": mounts,
        # The container's own bounds: processes (threads count) and memory.
        "container": {"pids_limit": _int(s["router_envoy_pids_limit"]), "memory": str(s["router_envoy_memory_limit"])},
        "access_log_dir": log_dir,
        # logrotate's configuration for a file access log (vars/main.yml: where it goes).
        "logrotate": _logrotate(s) if log_dir else "",
    }


def _managed(header, text):
    """``text`` under the managed header (the role's ``ansible_managed``, commented); empty stays empty."""
    return "%s\n%s" % (header.rstrip("\n"), text) if text and header else text


def router_plan(settings, hostname, probe=None, managed=""):
    """The router's plan from its settings (every ``router_*`` variable; others are ignored) and,
    when preflight ran, the host probe's result (``tproxy.envoy.host_probe``: ``tools``, ``links``,
    ``tproxy_kernel``). ``managed``: the comment that heads the rule files and the bootstrap.

    Returns ``{"problems": [...]}`` alone when a setting is wrong, each message naming its
    variable; otherwise also:
      names      the chains and the nftables table the router owns
      ports      http, l4, tls (each a list of ints), all (their union, in that order), proxy
      host       ipv6, families, backend (iptables|nftables), has_iptables, has_ip6tables,
                 kernel (backend, families, load: whether tproxy_kernel has anything to do)
      sysctls    every kernel setting; sysctls_base: those verify checks
      netstate   the tproxy.envoy.netstate role's inputs (rule files as text)
      envoy      policy, listeners, clusters, versions, bootstrap (and its YAML), static_yaml,
                 watched (file name to text), args, mounts, container (pids_limit, memory),
                 access_log_dir, logrotate
    """
    s = _plain({k: v for k, v in settings.items() if str(k).startswith("router_")})
    probe = _plain(probe or {})
    found = problems(s)
    if found:
        return {"problems": found}
    ports = {"http": [port_number(p) for p in s["router_intercept_ports"]],
             "l4": [port_number(p) for p in s["router_intercept_l4_ports"]],
             "tls": [port_number(p) for p in s["router_intercept_tls_ports"]],
             "proxy": port_number(s["router_proxy_port"])}
    ports["all"] = ports["http"] + ports["l4"] + ports["tls"]
    host = _host(s, probe)
    base, every = _sysctls(s, host, probe)
    policy = router_policy_plan(s["router_policy"], s["router_policy_default"], s["router_policy_mode"],
                                ports["http"], ports["l4"], ports["tls"])
    return {
        "problems": [],
        "names": {"chain": CHAIN, "divert_chain": DIVERT_CHAIN, "forward_chain": FORWARD_CHAIN,
                  "redirect_chain": REDIRECT_CHAIN, "policy_chain": POLICY_CHAIN, "nft_table": NFT_TABLE},
        "ports": ports,
        "host": host,
        "sysctls_base": base,
        "sysctls": every,
        "netstate": _netstate(s, ports, host, managed, policy),
        "envoy": _envoy(s, str(hostname), ports, host, managed, policy),
    }
