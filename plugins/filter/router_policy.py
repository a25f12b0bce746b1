# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that check the router's allow/deny policy and translate it into Envoy's matchers.

Three filters live here, each documented in its own sidecar file (router_policy_problems.yml,
router_policy_plan.yml, router_policy_forward.yml), as for the tests in plugins/test/.
"""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.tproxy.envoy.plugins.module_utils.ports import port_number

RULE_KEYS = ("name", "action", "hosts", "networks", "ports", "protocol", "sources")
ACTIONS = ("allow", "deny")
# What a rule's `protocol` may name: ICMP is ICMPv6 for IPv6. Without it a rule matches every
# protocol, and its `ports` (if any) are TCP ports that the router intercepts.
PROTOCOLS = ("tcp", "udp", "icmp")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
DEFAULT_RULE = "default"
# What the access log names as the rule of a request Envoy refused before the policy saw it.
REFUSED_RULE = "refused"

# Envoy type URLs, written once.
# The client: the socket's peer, never a header (X-Forwarded-For).
_SOURCE_INPUT = {"name": "source_ip", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput"}}
_IP_INPUT = {"name": "destination_ip", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput"}}
_IP_MATCHER = "type.googleapis.com/envoy.extensions.matching.input_matchers.ip.v3.Ip"
_RBAC_ACTION = "type.googleapis.com/envoy.config.rbac.v3.Action"


def _host_ok(host):
    if not isinstance(host, str):
        return False
    name = host[2:] if host.startswith("*.") else host
    labels = name.split(".")
    return len(name) <= 253 and len(labels) >= 1 and all(LABEL.match(label) for label in labels)


def _is_address(host):
    """An IP literal (or what a server would read as one: a last label of digits only). A name rule
    never matches a Host or SNI that is an address; an address belongs in ``networks``."""
    return isinstance(host, str) and _host_ok(host) and host.rsplit(".", 1)[-1].isdigit()


def _network(value):
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None


def _list_of(rule, key):
    value = rule.get(key, [])
    return value if isinstance(value, (list, tuple)) else None


def router_policy_problems(rules, intercepted_ports=None):
    """Every problem of ``rules`` (router_policy) as a sentence naming the rule; empty when valid.

    ``intercepted_ports``: every port the router intercepts; a rule's port must be one of them.
    """
    if not isinstance(rules, (list, tuple)):
        return ["router_policy must be a list of rules, got %r" % (rules,)]
    intercepted = {port_number(p) for p in intercepted_ports or []}
    problems = []
    names = []
    for index, rule in enumerate(rules, start=1):
        where = "router_policy rule %d" % index
        if not isinstance(rule, dict):
            problems.append("%s must be a dict with action and any of hosts, networks, ports, got %r" % (where, rule))
            continue
        if isinstance(rule.get("name"), str):
            where = "router_policy rule %d (%s)" % (index, rule["name"])
        unknown = sorted(set(rule) - set(RULE_KEYS))
        if unknown:
            problems.append("%s has unknown keys %s (known: %s)" % (where, ", ".join(map(str, unknown)), ", ".join(RULE_KEYS)))
        if rule.get("action") not in ACTIONS:
            problems.append("%s: action must be allow or deny, got %r" % (where, rule.get("action")))
        name = rule.get("name", "rule-%d" % index)
        if not isinstance(name, str) or not NAME.match(name) or name in (DEFAULT_RULE, REFUSED_RULE):
            problems.append("%s: name must be letters, digits, '.', '_' or '-' (at most 63, not %r or %r), got %r"
                            % (where, DEFAULT_RULE, REFUSED_RULE, name))
        elif name in names:
            problems.append("%s: name %r is used by an earlier rule" % (where, name))
        names.append(name)
        for key, check, what in (
                ("hosts", _host_ok, "host names or wildcards *.example.com"),
                ("networks", lambda n: _network(n) is not None, "networks in CIDR form without host bits (192.0.2.0/24)"),
                ("sources", lambda n: _network(n) is not None, "networks in CIDR form without host bits (192.0.2.0/24)"),
                ("ports", lambda p: port_number(p) is not None, "ports from 1 to 65535")):
            values = _list_of(rule, key)
            if values is None:
                problems.append("%s: %s must be a list of %s, got %r" % (where, key, what, rule.get(key)))
                continue
            bad = [v for v in values if not check(v)]
            if bad:
                problems.append("%s: %s must be %s, got %s" % (where, key, what, ", ".join(map(repr, bad))))
        addresses = [h for h in _list_of(rule, "hosts") or [] if _is_address(h)]
        if addresses:
            problems.append("%s: hosts must be names, not addresses (%s): a Host or SNI that is an address matches "
                            "no hosts rule; put addresses in networks" % (where, ", ".join(map(repr, addresses))))
        protocol = rule.get("protocol")
        if protocol is not None and protocol not in PROTOCOLS:
            problems.append("%s: protocol must be one of %s, got %r" % (where, ", ".join(PROTOCOLS), protocol))
        ports = _list_of(rule, "ports") or []
        if protocol == "icmp" and ports:
            problems.append("%s: an icmp rule has no ports" % where)
        if protocol in ("udp", "icmp") and rule.get("hosts"):
            problems.append("%s: hosts are only seen on intercepted TCP ports, never with protocol %s" % (where, protocol))
        # Without a protocol (as before it existed) ports are intercepted TCP ports; a hosts rule's
        # ports too, whatever its protocol: a name is only read where Envoy takes the connection.
        strays = [p for p in ports if port_number(p) is not None and port_number(p) not in intercepted]
        if strays and intercepted_ports is not None and (protocol is None or rule.get("hosts")):
            problems.append("%s: ports %s are not intercepted (router_intercept_ports, router_intercept_l4_ports, "
                            "router_intercept_tls_ports), so the rule could never match them%s"
                            % (where, ", ".join(map(str, strays)),
                               "" if rule.get("hosts") else "; for forwarded ports give protocol tcp or udp"))
    return problems


def _named(rules):
    """The rules with their names (given or rule-N) and normalised values."""
    if router_policy_problems(rules):
        raise AnsibleFilterError("router_policy is not valid: " + "; ".join(router_policy_problems(rules)))
    result = []
    for index, rule in enumerate(rules, start=1):
        result.append({
            "name": rule.get("name", "rule-%d" % index),
            "action": rule["action"],
            "hosts": [h.lower() for h in rule.get("hosts", [])],
            "networks": [_network(n) for n in rule.get("networks", [])],
            "sources": [_network(n) for n in rule.get("sources", [])],
            "ports": [port_number(p) for p in rule.get("ports", [])],
            "protocol": rule.get("protocol"),
        })
    return result


def _single(data_input, value_match=None, custom=None):
    predicate = {"input": data_input}
    if custom is not None:
        predicate["custom_match"] = custom
    else:
        predicate["value_match"] = value_match
    return {"single_predicate": predicate}


def _applies(rule, port, mode):
    """Whether a rule can match connections of this port at all (L4 ports carry no name; Envoy takes
    TCP only)."""
    if rule["protocol"] not in (None, "tcp"):
        return False
    if rule["ports"] and port not in rule["ports"]:
        return False
    return not (rule["hosts"] and mode == "l4")


def _covers(pattern, name):
    """Whether the hosts entry ``pattern`` matches every name the entry ``name`` stands for (an exact
    name, or a wildcard standing for its subdomains): itself, or a wildcard over one of its suffixes."""
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[1:]  # ".example.com"
    body = name[2:] if name.startswith("*.") else name
    return ("." + body).endswith(suffix) and ("." + body) != suffix


def _covering(name, by_pattern):
    """The indices of the rules whose hosts cover ``name``: its own entry and each wildcard over a
    suffix of it, found by lookup (never by scanning every rule)."""
    found = set(by_pattern.get(name, ()))
    labels = (name[2:] if name.startswith("*.") else name).split(".")
    for start in range(1, len(labels)):
        found.update(by_pattern.get("*." + ".".join(labels[start:]), ()))
    return found


def _name_cells(rules):
    """Each name the rules list (in order of appearance) with the rules that can match it, in policy
    order: those whose hosts cover it, and those that name no hosts at all."""
    by_pattern, names = {}, {}
    for index, rule in enumerate(rules):
        for host in rule["hosts"]:
            by_pattern.setdefault(host, []).append(index)
            names.setdefault(host, None)
    nameless = {index for index, rule in enumerate(rules) if not rule["hosts"]}
    return {name: [rules[i] for i in sorted(_covering(name, by_pattern) | nameless)] for name in names}


def _domains(names):
    """A virtual host's (or filter chain's) names as Envoy compares them: each also with the
    trailing dot of a fully qualified name, which servers read as the same name."""
    return [form for name in names for form in (name, name + ".")]


def _rbac_action(rule):
    return {"action": {"name": rule["name"], "typed_config": {
        "@type": _RBAC_ACTION, "name": rule["name"], "action": rule["action"].upper()}}}


def _address_predicate(rule):
    """The rule's sources and networks as one predicate, or None when it names neither."""
    parts = []
    for key, data_input, suffix in (("sources", _SOURCE_INPUT, "_sources"), ("networks", _IP_INPUT, "")):
        if rule[key]:
            parts.append(_single(data_input, custom={"name": "ip", "typed_config": {
                "@type": _IP_MATCHER, "stat_prefix": "policy_%s%s" % (rule["name"].replace(".", "_"), suffix),
                "cidr_ranges": [{"address_prefix": str(n.network_address), "prefix_len": n.prefixlen}
                                for n in rule[key]]}}))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"and_matcher": {"predicate": parts}}


def _rbac_tree(rules, default_rule):
    """An RBAC matcher over ``rules`` (already chosen by port and name), first match wins: a rule
    that names no sources or networks ends the list (it matches whatever reaches it)."""
    matchers = []
    last = default_rule
    for rule in rules:
        predicate = _address_predicate(rule)
        if predicate is None:
            last = rule
            break
        matchers.append({"predicate": predicate, "on_match": _rbac_action(rule)})
    tree = {"on_no_match": _rbac_action(last)}
    if matchers:
        tree["matcher_list"] = {"matchers": matchers}
    return tree


def _http_port(rules, default_rule):
    """One HTTP port's policy: virtual hosts by name (Envoy finds a Host's by hash, then by the
    longest wildcard suffix), each with the RBAC matcher of the rules that can match its names; the
    catch-all (any other name, an address, no name) with the rules that name no hosts."""
    groups = {}
    for name, matching in _name_cells(rules).items():
        groups.setdefault(tuple(r["name"] for r in matching), (matching, []))[1].append(name)
    virtual_hosts = [{"name": "policy-%d" % number, "domains": _domains(names), "rbac": _rbac_tree(matching, default_rule)}
                     for number, (matching, names) in enumerate(groups.values(), start=1)]
    return {"virtual_hosts": virtual_hosts, "rbac": _rbac_tree([r for r in rules if not r["hosts"]], default_rule)}


def _cells(networks):
    """The cells Envoy's filter chain match sees: each distinct network, matched most specific first,
    and None (an address in none of them)."""
    unique = []
    for network in networks:
        if network not in unique:
            unique.append(network)
    return unique + [None]


def _within(rule, key, cell):
    """Whether every address of the cell (a network of the rule set, or None: outside all of them)
    meets the rule's ``key`` (sources or networks)."""
    if not rule[key]:
        return True
    return cell is not None and any(cell.version == n.version and cell.subnet_of(n) for n in rule[key])


def _decided_cells(rules, default_rule, with_names):
    """The rule that decides each cell Envoy's filter chain match tells apart: for each destination
    cell, each name (and None: any other name, or none) with, per source cell, the first rule that
    matches every address and name of the cell, else the default. Returns the source cells and
    [(destination, [(name, [rule per source cell])])]."""
    destinations = _cells([n for r in rules for n in r["networks"]])
    sources = _cells([n for r in rules for n in r["sources"]])
    names = list(_name_cells(rules).items()) if with_names else []
    nameless = [r for r in rules if not r["hosts"]]
    result = []
    for destination in destinations:
        by_name = []
        for name, matching in names + [(None, nameless)]:
            by_name.append((name, [next((r for r in matching if _within(r, "networks", destination)
                                         and _within(r, "sources", source)), default_rule) for source in sources]))
        result.append((destination, by_name))
    return sources, result


def _connection_port(rules, default_rule, port, chain_mode, mode):
    """One L4 or TLS port's filter chains. Envoy's filter chain match takes the most specific
    destination network, then the exact SNI or the longest wildcard, then the most specific source
    network; each chain is one such cell (names grouped), decided by the policy's first rule that
    matches it. A name whose decision does not depend on the source gets one chain for every
    source; a destination where no name changes the decision lists no names."""
    sources, cells = _decided_cells(rules, default_rule, chain_mode == "tls")
    chains, taken = [], {}
    for destination, by_name in cells:
        decided = []
        for name, by_source in by_name:
            if all(rule is by_source[0] for rule in by_source):
                decided.append((name, [(None, by_source[0])]))
            else:
                decided.append((name, list(zip(sources, by_source))))
        if all(per_source == decided[-1][1] for _name, per_source in decided):
            decided = decided[-1:]
        groups = {}
        for name, per_source in decided:
            for source, rule in per_source:
                key = (rule["name"], name is None, None if source is None else str(source))
                groups.setdefault(key, (rule, source, []))[2].append(name)
        for rule, source, cell_names in groups.values():
            match = {"destination_port": port}
            if destination is not None:
                match["prefix_ranges"] = [_cidr(destination)]
            if cell_names != [None]:
                match["server_names"] = _domains(cell_names)
            if source is not None:
                match["direct_source_prefix_ranges"] = [_cidr(source)]
            base = "%s-%d-%s" % (chain_mode, port, rule["name"])
            taken[base] = taken.get(base, 0) + 1
            denied = rule["action"] == "deny"
            chains.append({"name": base if taken[base] == 1 else "%s-%d" % (base, taken[base]), "port": port,
                           "mode": chain_mode, "rule": rule["name"], "decision": "denied" if denied else "allowed",
                           "deny": denied and mode == "enforce", "match": match})
    return chains


def _ss_cell(key, cell, networks):
    """An ss filter for the addresses of one cell (``key`` src: the original destination, the
    accepted socket's local address under TPROXY; dst: the client): in the cell's network and in
    none of the more specific networks that are cells of their own."""
    inner = [n for n in networks if n != cell and n.version == getattr(cell, "version", n.version)
             and (cell is None or n.subnet_of(cell))]
    parts = [] if cell is None else ["%s %s" % (key, cell)]
    if inner:
        parts.append("not ( %s )" % " or ".join("%s %s" % (key, n) for n in inner))
    return " and ".join(parts)


def _close_filter(rules, default_rule, port, with_names):
    """An ss filter (iproute2) for Envoy's accepted connections on ``port`` that the policy denies
    whatever their name: the addresses of every cell whose rule denies for every name. None when
    no such cell exists."""
    sources, cells = _decided_cells(rules, default_rule, with_names)
    destinations = [d for d, _cells in cells if d is not None]
    source_networks = [s for s in sources if s is not None]
    found = []
    for destination, by_name in cells:
        denied = [all(by_source[index]["action"] == "deny" for _name, by_source in by_name)
                  for index in range(len(sources))]
        # Every client denied there: the destination alone.
        for source in [None] if all(denied) else [s for s, d in zip(sources, denied) if d]:
            cell = " and ".join(part for part in (_ss_cell("src", destination, destinations),
                                                  _ss_cell("dst", source, source_networks if not all(denied) else []))
                                if part)
            found.append("( %s )" % cell if cell else "")
    if not found:
        return None
    if "" in found:
        return "sport = :%d" % port
    return "sport = :%d and ( %s )" % (port, " or ".join(found))


def _cidr(network):
    return {"address_prefix": str(network.network_address), "prefix_len": network.prefixlen}


def router_policy_plan(rules, default="allow", mode="enforce", http_ports=(), l4_ports=(), tls_ports=()):
    """Envoy's side of the policy: the listener's filter chains, and each HTTP port's virtual hosts.

    Names are looked up, never scanned: Envoy finds a Host's virtual host and an SNI's filter chain
    by hash (the exact name), then by the longest wildcard suffix; what is left to evaluate per
    request is the few rules that can match that name (their sources and networks).

    Returns a dict:
      chains: list of {name, port, mode (http|l4|tls), rule, decision (allowed|denied), deny (bool),
        match (Envoy's filter_chain_match)}: one chain per HTTP port; per L4/TLS port one per cell
        of destination network, SNI names and source network that Envoy's match tells apart, each
        decided by the first rule that matches it, else the default. ``deny`` is true when the
        chain refuses connections (enforce mode, deny decision).
      http: {port: {virtual_hosts: [{name, domains, rbac}], rbac}}, only when a policy is set
        (rules, or a default of deny): ``rbac`` is an RBAC matcher, the port's own for the
        catch-all virtual host (any other name).
      active: whether any policy is set.
      close: ss filters (iproute2), one per port where the policy denies some addresses whatever the
        name: Envoy's accepted connections there (local address: the original destination; peer:
        the client) that the role closes after a change (enforce mode; empty in monitor mode).
      forward: whether forwarded traffic is policed (router_policy_forward has its rules).
      forward_drop_rest: whether the forward chain drops, after the policy of the forward sources, what
        no earlier rule accepted (default deny, enforce mode).
    """
    if default not in ACTIONS:
        raise AnsibleFilterError("router_policy_default must be allow or deny, got %r" % (default,))
    if mode not in ("enforce", "monitor"):
        raise AnsibleFilterError("router_policy_mode must be enforce or monitor, got %r" % (mode,))
    named = _named(rules or [])
    active = bool(named) or default == "deny"
    default_rule = {"name": DEFAULT_RULE, "action": default, "hosts": [], "networks": [], "ports": [], "protocol": None,
                    "sources": []}
    chains, http, close = [], {}, []
    for port in http_ports:
        port = port_number(port)
        if active and mode == "enforce":
            close.append(_close_filter([r for r in named if _applies(r, port, "http")], default_rule, port, True))
        chains.append({"name": "http-%d" % port, "port": port, "mode": "http", "rule": None, "decision": None,
                       "deny": False, "match": {"destination_port": port}})
        if active:
            http[port] = _http_port([r for r in named if _applies(r, port, "http")], default_rule)
    for chain_mode, ports in (("l4", l4_ports), ("tls", tls_ports)):
        for port in ports:
            port = port_number(port)
            applying = [r for r in named if _applies(r, port, chain_mode)]
            chains += _connection_port(applying, default_rule, port, chain_mode, mode)
            if mode == "enforce":
                close.append(_close_filter(applying, default_rule, port, chain_mode == "tls"))
    # Forwarded traffic (what is not intercepted) is policed too when a rule can match it (one without
    # hosts) or the default denies: router_policy_forward gives its rules.
    forward = default == "deny" or any(not rule["hosts"] for rule in named)
    return {"chains": chains, "http": http, "active": active, "close": [f for f in close if f],
            "forward": forward, "forward_drop_rest": default == "deny" and mode == "enforce"}


FAMILIES = {
    # family: (ipaddress version, iptables' ICMP protocol, nftables' address keyword, ICMP l4proto)
    "ipv4": (4, "icmp", "ip", "icmp"),
    "ipv6": (6, "ipv6-icmp", "ip6", "ipv6-icmp"),
}
_MULTIPORT_MAX = 15  # iptables' multiport match takes at most 15 ports


def _forward_rules(named, default):
    """The rules that can match forwarded traffic (no name is seen there: hosts rules never match),
    then the default, each with its protocol (ports without one are TCP ports)."""
    rules = [dict(r, protocol=r["protocol"] or ("tcp" if r["ports"] else None)) for r in named if not r["hosts"]]
    return rules + [{"name": DEFAULT_RULE, "action": default, "hosts": [], "networks": [], "ports": [], "protocol": None,
                     "sources": []}]


def _verdict(rule, mode, allow, deny):
    return deny if rule["action"] == "deny" and mode == "enforce" else allow


def _comment(rule, mode):
    if rule["name"] == DEFAULT_RULE:
        what = "router_policy_default %s" % rule["action"]
    else:
        what = "router_policy rule %s (%s)" % (rule["name"], rule["action"])
    would = " (monitor: would deny)" if rule["action"] == "deny" and mode != "enforce" else ""
    return "tproxy.envoy: %s%s" % (what, would)


def _family_networks(rule, family, key="networks"):
    """This family's networks (or sources) of the rule: [None] when the rule names none (any), []
    when it names only the other family's (the rule cannot match this family)."""
    if not rule[key]:
        return [None]
    version = FAMILIES[family][0]
    return [n for n in rule[key] if n.version == version]


def _iptables_lines(rules, mode, family, chain):
    icmp = FAMILIES[family][1]
    lines = []
    for rule in rules:
        if rule["protocol"] == "icmp":
            protocols = ["-p %s" % icmp]
        elif rule["protocol"] and rule["ports"]:
            ports = [str(p) for p in rule["ports"]]
            protocols = ["-p %s -m multiport --dports %s" % (rule["protocol"], ",".join(ports[i:i + _MULTIPORT_MAX]))
                         for i in range(0, len(ports), _MULTIPORT_MAX)]
        elif rule["protocol"]:
            protocols = ["-p %s" % rule["protocol"]]
        else:
            protocols = [None]
        for source in _family_networks(rule, family, "sources"):
            for network in _family_networks(rule, family):
                for protocol in protocols:
                    match = "".join(" " + part for part in (source and "-s %s" % source, network and "-d %s" % network,
                                                            protocol) if part)
                    lines.append('-A %s%s -m comment --comment "%s" -j %s'
                                 % (chain, match, _comment(rule, mode), _verdict(rule, mode, "ACCEPT", "DROP")))
    return lines


def _nft_set(values):
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else "{ %s }" % ", ".join(values)


def _nft_lines(rules, mode):
    lines = []
    for rule in rules:
        for family in ("ipv4", "ipv6") if rule["networks"] or rule["sources"] else (None,):
            sources = _family_networks(rule, family, "sources") if family else [None]
            networks = _family_networks(rule, family) if family else [None]
            if not networks or not sources:
                continue
            parts = []
            for direction, values in (("saddr", sources), ("daddr", networks)):
                if values != [None]:
                    parts.append("%s %s %s" % (FAMILIES[family][2], direction, _nft_set(values)))
            if rule["protocol"] == "icmp":
                parts.append("meta l4proto %s" % (FAMILIES[family][3] if family else "{ icmp, ipv6-icmp }"))
            elif rule["protocol"] and rule["ports"]:
                parts.append("%s dport %s" % (rule["protocol"], _nft_set(rule["ports"])))
            elif rule["protocol"]:
                parts.append("meta l4proto %s" % rule["protocol"])
            parts.append(_verdict(rule, mode, "accept", "drop"))
            lines.append('%s comment "%s"' % (" ".join(parts), _comment(rule, mode)))
    return lines


def _nft_chains(rules, mode, chain, sources, drop_rest):
    """The nftables table's forward chain (the sources' traffic to the policy chain; with ``drop_rest``,
    nothing else forwarded) and the policy chain. An accept in these chains leaves the decision to the
    other tables (Docker's FORWARD policy, for one); a drop is final."""
    forward = ['# router_policy for forwarded traffic (what the router does not intercept).',
               "chain forward {", "\ttype filter hook forward priority filter; policy accept;"]
    by_family = {family: [s for s in sources or [] if _network(s) is not None and _network(s).version == spec[0]]
                 for family, spec in FAMILIES.items()}
    for family, networks in by_family.items():
        if networks:
            keyword = FAMILIES[family][2]
            forward.append('\t%s daddr %s accept comment "tproxy.envoy: forward to the forward sources"'
                           % (keyword, _nft_set(networks)))
            forward.append('\t%s saddr %s jump %s comment "tproxy.envoy: router_policy for the forward sources"'
                           % (keyword, _nft_set(networks), chain))
    if drop_rest:
        forward.append('\tdrop comment "tproxy.envoy: router_policy_default deny: nothing else is forwarded"')
    return forward + ["}", "chain %s {" % chain] + ["\t" + line for line in _nft_lines(rules, mode)] + ["}"]


def router_policy_forward(rules, default="allow", mode="enforce", syntax="iptables", family="ipv4",
                          chain=None, sources=None, drop_rest=None):
    """router_policy for forwarded traffic (what the router does not intercept): the rules of the
    policy's chain, in order, the default last.

    Rules with ``hosts`` never match here (no name is seen); ``ports`` without a ``protocol`` are TCP
    ports; a rule naming networks of the other family only does not match this family.
    ``syntax`` ``iptables``: ``iptables-restore`` lines (``-A CHAIN ...``) of ``family``; ``chain``
    (default ``TPROXY-ENVOY-POLICY``) is the policy's chain, which the forward chain jumps to.
    ``syntax`` ``nftables``: the lines of two chains of an ``inet`` table, both families: ``forward``
    (hooked; ``sources``' traffic jumps to the policy's chain ``chain``, default ``router_policy``)
    and the policy's chain. ``drop_rest`` (default: default deny in enforce mode): the forward chain
    drops what is not the sources' (false where iptables' FORWARD does that after Docker's chains).
    In ``monitor`` mode every verdict is accept (the comments say what enforce would deny).
    """
    if default not in ACTIONS:
        raise AnsibleFilterError("router_policy_default must be allow or deny, got %r" % (default,))
    if mode not in ("enforce", "monitor"):
        raise AnsibleFilterError("router_policy_mode must be enforce or monitor, got %r" % (mode,))
    if family not in FAMILIES:
        raise AnsibleFilterError("family must be ipv4 or ipv6, got %r" % (family,))
    forward = _forward_rules(_named(rules or []), default)
    if syntax == "iptables":
        return _iptables_lines(forward, mode, family, chain or "TPROXY-ENVOY-POLICY")
    if syntax == "nftables":
        if drop_rest is None:
            drop_rest = default == "deny" and mode == "enforce"
        return _nft_chains(forward, mode, chain or "router_policy", sources, drop_rest)
    raise AnsibleFilterError("syntax must be iptables or nftables, got %r" % (syntax,))


class FilterModule:
    def filters(self):
        return {
            "router_policy_problems": router_policy_problems,
            "router_policy_plan": router_policy_plan,
            "router_policy_forward": router_policy_forward,
        }
