"""router_policy: bad rules are refused naming the rule; good ones become Envoy matchers in order."""

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.filter.router_policy import (
    host_regex, router_policy_plan, router_policy_problems)

PORTS = [80, 443, 5432]


@pytest.mark.parametrize("rules,needle", [
    ("allow", "must be a list"),
    (["allow"], "rule 1 must be a dict"),
    ([{"action": "block"}], "rule 1: action must be allow or deny"),
    ([{"hosts": ["a.example.com"]}], "rule 1: action must be allow or deny"),
    ([{"action": "allow", "host": ["a.example.com"]}], "unknown keys host"),
    ([{"action": "allow", "hosts": ["*.*.example.com"]}], "hosts must be host names"),
    ([{"action": "allow", "hosts": ["www.example.com:80"]}], "hosts must be host names"),
    ([{"action": "allow", "hosts": ["-bad.example.com"]}], "hosts must be host names"),
    ([{"action": "allow", "hosts": "www.example.com"}], "hosts must be a list"),
    ([{"action": "allow", "networks": ["192.0.2.1/24"]}], "networks must be networks in CIDR form"),
    ([{"action": "allow", "networks": ["192.0.2.0/33"]}], "networks must be networks in CIDR form"),
    ([{"action": "allow", "networks": ["example.com"]}], "networks must be networks in CIDR form"),
    ([{"action": "deny", "ports": [70000]}], "ports must be ports from 1 to 65535"),
    ([{"action": "deny", "ports": [True]}], "ports must be ports from 1 to 65535"),
    ([{"action": "deny", "ports": [8080]}], "ports 8080 are not intercepted"),
    ([{"action": "deny", "name": "default"}], "name must be"),
    ([{"action": "deny", "name": "has space"}], "name must be"),
    ([{"action": "deny", "name": "x"}, {"action": "allow", "name": "x"}], "rule 2 (x): name 'x' is used by an earlier rule"),
])
def test_bad_rules_are_refused_naming_the_rule(rules, needle):
    problems = router_policy_problems(rules, PORTS)
    assert problems and any(needle in p for p in problems), problems
    assert all(p.startswith("router_policy") for p in problems)


def test_good_rules_have_no_problems_and_port_strings_count_as_ports():
    rules = [{"action": "deny", "name": "db", "networks": ["198.51.100.0/24", "2001:db8::/32"], "ports": ["5432"]},
             {"action": "allow", "hosts": ["www.example.com", "*.example.net"]},
             {"action": "deny"}]
    assert router_policy_problems(rules, PORTS) == []
    assert router_policy_problems([], PORTS) == []


@pytest.mark.parametrize("pattern,name,with_port,matches", [
    ("www.example.com", "www.example.com", True, True),
    ("www.example.com", "WWW.Example.COM", True, True),
    ("www.example.com", "www.example.com:8080", True, True),
    ("www.example.com", "www.example.com:8080", False, False),
    ("www.example.com", "wwwXexample.com", True, False),
    ("www.example.com", "a.www.example.com", True, False),
    ("*.example.com", "a.example.com", False, True),
    ("*.example.com", "a.b.example.com", False, True),
    ("*.example.com", "example.com", False, False),
    ("*.example.com", "a.example.com.evil.example.net", False, False),
    ("*.example.com", "aexample.com", False, False),
])
def test_host_patterns_match_exact_names_and_wildcard_subdomains(pattern, name, with_port, matches):
    regex = host_regex(pattern, with_port)
    assert regex.startswith("(?i)^")
    # RE2 and Python read the same syntax here.
    assert bool(re.match(regex, name)) is matches


def chain_of(plan, port, **inputs):
    """Walk the listener matcher as Envoy would for a connection (first match wins)."""
    node = plan["filter_chain_matcher"]["matcher_tree"]["exact_match_map"]["map"].get(str(port))
    if node is None:
        return None
    if "action" in node:
        return node["action"]["typed_config"]["value"]
    for matcher in node["matcher"]["matcher_list"]["matchers"]:
        if _holds(matcher["predicate"], dict(inputs, destination_port=str(port))):
            return matcher["on_match"]["action"]["typed_config"]["value"]
    return node["matcher"]["on_no_match"]["action"]["typed_config"]["value"]


def _holds(predicate, inputs):
    import ipaddress
    if "and_matcher" in predicate:
        return all(_holds(p, inputs) for p in predicate["and_matcher"]["predicate"])
    if "or_matcher" in predicate:
        return any(_holds(p, inputs) for p in predicate["or_matcher"]["predicate"])
    single = predicate["single_predicate"]
    value = inputs.get(single["input"]["name"])
    if value is None:
        return False
    if "custom_match" in single:
        ranges = single["custom_match"]["typed_config"]["cidr_ranges"]
        return any(ipaddress.ip_address(value) in ipaddress.ip_network("%s/%d" % (r["address_prefix"], r["prefix_len"]))
                   for r in ranges)
    match = single["value_match"]
    if "exact" in match:
        return value == match["exact"]
    return re.match(match["safe_regex"]["regex"], value) is not None


RULES = [
    {"name": "no-8443", "action": "deny", "ports": [8443]},
    {"action": "allow", "hosts": ["www.example.com", "*.example.net"]},
    {"name": "db", "action": "allow", "networks": ["192.0.2.0/24"], "ports": [5432]},
]


def test_l4_and_tls_connections_get_the_chain_of_the_first_matching_rule_or_the_default():
    plan = router_policy_plan(RULES, "deny", "enforce", [80], [5432], [443, 8443])
    assert chain_of(plan, 80) == "http-80"
    assert chain_of(plan, 443, server_name="www.example.com", destination_ip="198.51.100.7") == "tls-443-rule-2"
    assert chain_of(plan, 443, server_name="api.EXAMPLE.net", destination_ip="198.51.100.7") == "tls-443-rule-2"
    assert chain_of(plan, 443, server_name="other.example.org", destination_ip="198.51.100.7") == "tls-443-default"
    assert chain_of(plan, 443, destination_ip="198.51.100.7") == "tls-443-default"  # no SNI
    assert chain_of(plan, 8443, server_name="www.example.com", destination_ip="192.0.2.5") == "tls-8443-no-8443"
    assert chain_of(plan, 5432, destination_ip="192.0.2.5") == "l4-5432-db"
    assert chain_of(plan, 5432, destination_ip="203.0.113.5") == "l4-5432-default"
    assert chain_of(plan, 22, destination_ip="192.0.2.5") is None, "a port not intercepted has no chain"
    chains = {c["name"]: c for c in plan["chains"]}
    # A hosts rule never matches on an L4 port: it gets no chain there.
    assert "l4-5432-rule-2" not in chains
    assert [(c["decision"], c["deny"]) for c in (chains["tls-443-rule-2"], chains["tls-443-default"])] == [
        ("allowed", False), ("denied", True)]
    assert chains["tls-8443-no-8443"]["rule"] == "no-8443"
    assert len(chains) == len(plan["chains"]), "chain names are unique"


def test_monitor_mode_keeps_the_decisions_but_denies_nothing():
    plan = router_policy_plan(RULES, "deny", "monitor", [80], [5432], [443])
    assert [c["decision"] for c in plan["chains"] if c["mode"] != "http"] == ["allowed", "denied", "allowed", "denied"]
    assert not any(c["deny"] for c in plan["chains"])


def test_http_ports_get_an_ordered_rbac_matcher_with_the_default_last():
    plan = router_policy_plan(RULES, "allow", "enforce", [80, 8080], [], [])
    tree = plan["http_rbac"][80]
    actions = [(m["on_match"]["action"]["name"], m["on_match"]["action"]["typed_config"]["action"])
               for m in tree["matcher_list"]["matchers"]]
    # no-8443 and db name other ports: not on port 80's list.
    assert actions == [("rule-2", "ALLOW")]
    assert tree["on_no_match"]["action"]["typed_config"] == {
        "@type": "type.googleapis.com/envoy.config.rbac.v3.Action", "name": "default", "action": "ALLOW"}
    first = tree["matcher_list"]["matchers"][0]["predicate"]
    assert _holds(first, {"destination_port": "80", "host": "www.example.com:80"})
    assert not _holds(first, {"destination_port": "80", "host": "www.example.org"})


def test_no_policy_means_no_rbac_and_one_chain_per_port():
    plan = router_policy_plan([], "allow", "enforce", [80], [5432], [443])
    assert plan["active"] is False and plan["http_rbac"] == {}
    assert [c["name"] for c in plan["chains"]] == ["http-80", "l4-5432-default", "tls-443-default"]
    assert router_policy_plan([], "deny", "enforce", [80])["active"] is True


def test_an_invalid_policy_or_setting_is_an_error_not_a_config():
    with pytest.raises(AnsibleFilterError, match="action must be allow or deny"):
        router_policy_plan([{"action": "maybe"}], "allow", "enforce", [80])
    with pytest.raises(AnsibleFilterError, match="router_policy_default"):
        router_policy_plan([], "maybe", "enforce", [80])
    with pytest.raises(AnsibleFilterError, match="router_policy_mode"):
        router_policy_plan([], "allow", "audit", [80])
