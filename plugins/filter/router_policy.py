# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that check the router's allow/deny policy and translate it into Envoy's matchers.

Two filters live here, each documented in its own sidecar file (router_policy_problems.yml,
router_policy_plan.yml), as for the tests in plugins/test/.
"""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.tproxy.envoy.plugins.module_utils.ports import port_number

RULE_KEYS = ("name", "action", "hosts", "networks", "ports")
ACTIONS = ("allow", "deny")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
DEFAULT_RULE = "default"

# Envoy type URLs, written once.
_PORT_INPUT = {"name": "destination_port", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput"}}
_IP_INPUT = {"name": "destination_ip", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput"}}
_SNI_INPUT = {"name": "server_name", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.ServerNameInput"}}
_HOST_INPUT = {"name": "host", "typed_config": {
    "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput", "header_name": ":authority"}}
_IP_MATCHER = "type.googleapis.com/envoy.extensions.matching.input_matchers.ip.v3.Ip"
_RBAC_ACTION = "type.googleapis.com/envoy.config.rbac.v3.Action"
_CHAIN_ACTION = "type.googleapis.com/google.protobuf.StringValue"


def _host_ok(host):
    if not isinstance(host, str):
        return False
    name = host[2:] if host.startswith("*.") else host
    labels = name.split(".")
    return len(name) <= 253 and len(labels) >= 1 and all(LABEL.match(label) for label in labels)


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
        if not isinstance(name, str) or not NAME.match(name) or name == DEFAULT_RULE:
            problems.append("%s: name must be letters, digits, '.', '_' or '-' (at most 63, not %r), got %r"
                            % (where, DEFAULT_RULE, name))
        elif name in names:
            problems.append("%s: name %r is used by an earlier rule" % (where, name))
        names.append(name)
        for key, check, what in (
                ("hosts", _host_ok, "host names or wildcards *.example.com"),
                ("networks", lambda n: _network(n) is not None, "networks in CIDR form without host bits (192.0.2.0/24)"),
                ("ports", lambda p: port_number(p) is not None, "ports from 1 to 65535")):
            values = _list_of(rule, key)
            if values is None:
                problems.append("%s: %s must be a list of %s, got %r" % (where, key, what, rule.get(key)))
                continue
            bad = [v for v in values if not check(v)]
            if bad:
                problems.append("%s: %s must be %s, got %s" % (where, key, what, ", ".join(map(repr, bad))))
        ports = _list_of(rule, "ports") or []
        strays = [p for p in ports if port_number(p) is not None and port_number(p) not in intercepted]
        if strays and intercepted_ports is not None:
            problems.append("%s: ports %s are not intercepted (router_intercept_ports, router_intercept_l4_ports, "
                            "router_intercept_tls_ports), so the rule could never match them"
                            % (where, ", ".join(map(str, strays))))
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
            "ports": [port_number(p) for p in rule.get("ports", [])],
        })
    return result


def host_regex(host, with_port):
    """RE2 pattern for a Host header (``with_port``: may carry ``:port``) or an SNI.

    ``www.example.com`` matches that name only; ``*.example.com`` any name that ends in
    ``.example.com`` (one label or more before it), never ``example.com`` itself. Case-insensitive.
    """
    if host.startswith("*."):
        body = r"[^:/]+\." + re.escape(host[2:])
    else:
        body = re.escape(host)
    return "(?i)^" + body + (r"(:[0-9]+)?$" if with_port else "$")


def _single(data_input, value_match=None, custom=None):
    predicate = {"input": data_input}
    if custom is not None:
        predicate["custom_match"] = custom
    else:
        predicate["value_match"] = value_match
    return {"single_predicate": predicate}


def _any_of(predicates):
    return predicates[0] if len(predicates) == 1 else {"or_matcher": {"predicate": predicates}}


def _predicate(rule, port, name_input, with_port):
    """The Envoy predicate of one rule on one port (its ports were checked when it was chosen)."""
    parts = [_single(_PORT_INPUT, {"exact": str(port)})]
    if rule["networks"]:
        parts.append(_single(_IP_INPUT, custom={"name": "ip", "typed_config": {
            "@type": _IP_MATCHER, "stat_prefix": "policy_%s" % rule["name"].replace(".", "_"),
            "cidr_ranges": [{"address_prefix": str(n.network_address), "prefix_len": n.prefixlen}
                            for n in rule["networks"]]}}))
    if rule["hosts"]:
        parts.append(_any_of([_single(name_input, {"safe_regex": {"google_re2": {}, "regex": host_regex(h, with_port)}})
                              for h in rule["hosts"]]))
    return parts[0] if len(parts) == 1 else {"and_matcher": {"predicate": parts}}


def _applies(rule, port, mode):
    """Whether a rule can match connections of this port at all (L4 ports carry no name)."""
    if rule["ports"] and port not in rule["ports"]:
        return False
    return not (rule["hosts"] and mode == "l4")


def router_policy_plan(rules, default="allow", mode="enforce", http_ports=(), l4_ports=(), tls_ports=()):
    """Envoy's side of the policy: the listener's filter chains and matcher, and each HTTP port's RBAC matcher.

    Returns a dict:
      chains: list of {name, port, mode (http|l4|tls), rule, decision (allowed|denied), deny (bool)}
        one chain per HTTP port; per L4/TLS port one per rule that applies there, then the default.
        ``deny`` is true when the chain refuses connections (enforce mode, deny decision).
      filter_chain_matcher: the listener's matcher, destination port first, then the rules in order.
      http_rbac: {port: RBAC matcher}, only when a policy is set (rules, or a default of deny).
      active: whether any policy is set.
    """
    if default not in ACTIONS:
        raise AnsibleFilterError("router_policy_default must be allow or deny, got %r" % (default,))
    if mode not in ("enforce", "monitor"):
        raise AnsibleFilterError("router_policy_mode must be enforce or monitor, got %r" % (mode,))
    named = _named(rules or [])
    active = bool(named) or default == "deny"
    default_rule = {"name": DEFAULT_RULE, "action": default, "hosts": [], "networks": [], "ports": []}
    chains, port_map, http_rbac = [], {}, {}

    def chain_action(name):
        return {"action": {"name": "filter_chain", "typed_config": {"@type": _CHAIN_ACTION, "value": name}}}

    for port in http_ports:
        port = port_number(port)
        name = "http-%d" % port
        chains.append({"name": name, "port": port, "mode": "http", "rule": None, "decision": None, "deny": False})
        port_map[str(port)] = chain_action(name)
        if active:
            matchers = [{"predicate": _predicate(rule, port, _HOST_INPUT, True),
                         "on_match": {"action": {"name": rule["name"], "typed_config": {
                             "@type": _RBAC_ACTION, "name": rule["name"], "action": rule["action"].upper()}}}}
                        for rule in named if _applies(rule, port, "http")]
            tree = {"on_no_match": {"action": {"name": DEFAULT_RULE, "typed_config": {
                "@type": _RBAC_ACTION, "name": DEFAULT_RULE, "action": default.upper()}}}}
            if matchers:
                tree["matcher_list"] = {"matchers": matchers}
            http_rbac[port] = tree
    for chain_mode, ports in (("l4", l4_ports), ("tls", tls_ports)):
        for port in ports:
            port = port_number(port)
            matchers = []
            on_no_match = None
            for rule in [r for r in named if _applies(r, port, chain_mode)] + [default_rule]:
                denied = rule["action"] == "deny"
                name = "%s-%d-%s" % (chain_mode, port, rule["name"])
                chains.append({"name": name, "port": port, "mode": chain_mode, "rule": rule["name"],
                               "decision": "denied" if denied else "allowed", "deny": denied and mode == "enforce"})
                if rule is default_rule:
                    on_no_match = chain_action(name)
                else:
                    matchers.append({"predicate": _predicate(rule, port, _SNI_INPUT, False), "on_match": chain_action(name)})
            if matchers:
                port_map[str(port)] = {"matcher": {"matcher_list": {"matchers": matchers}, "on_no_match": on_no_match}}
            else:
                port_map[str(port)] = on_no_match
    matcher = {"matcher_tree": {"input": _PORT_INPUT, "exact_match_map": {"map": port_map}}}
    return {"chains": chains, "filter_chain_matcher": matcher, "http_rbac": http_rbac, "active": active}


class FilterModule:
    def filters(self):
        return {
            "router_policy_problems": router_policy_problems,
            "router_policy_plan": router_policy_plan,
        }
