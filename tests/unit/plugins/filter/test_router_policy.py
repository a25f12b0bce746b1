"""router_policy: bad rules are refused naming the rule; good ones become Envoy matchers in order."""

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.filter.router_policy import (
    host_regex, router_policy_forward, router_policy_plan, router_policy_problems)

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
    ([{"action": "deny", "name": "refused"}], "name must be"),
    ([{"action": "allow", "hosts": ["192.0.2.180"]}], "hosts must be names, not addresses"),
    ([{"action": "allow", "hosts": ["*.2.180"]}], "hosts must be names, not addresses"),
    ([{"action": "allow", "hosts": ["[2001:db8::180]"]}], "hosts must be host names"),
    ([{"action": "allow", "protocol": "sctp"}], "protocol must be one of tcp, udp, icmp"),
    ([{"action": "allow", "protocol": ["udp"]}], "protocol must be one of"),
    ([{"action": "allow", "protocol": "icmp", "ports": [80]}], "an icmp rule has no ports"),
    ([{"action": "allow", "protocol": "udp", "hosts": ["www.example.com"]}], "hosts are only seen on intercepted TCP"),
    ([{"action": "allow", "protocol": "tcp", "hosts": ["www.example.com"], "ports": [8080]}], "ports 8080 are not intercepted"),
    ([{"action": "deny", "ports": [8080]}], "for forwarded ports give protocol tcp or udp"),
    ([{"action": "deny", "name": "has space"}], "name must be"),
    ([{"action": "deny", "name": "x"}, {"action": "allow", "name": "x"}], "rule 2 (x): name 'x' is used by an earlier rule"),
])
def test_bad_rules_are_refused_naming_the_rule(rules, needle):
    problems = router_policy_problems(rules, PORTS)
    assert problems and any(needle in p for p in problems), problems
    assert all(p.startswith("router_policy") for p in problems)


def test_good_rules_have_no_problems_and_port_strings_count_as_ports():
    rules = [{"action": "deny", "name": "db", "networks": ["198.51.100.0/24", "2001:db8::/32"], "ports": ["5432"]},
             {"action": "allow", "hosts": ["www.example.com", "*.example.net", "a1.example.123x"]},
             {"action": "allow", "protocol": "udp", "ports": [53, 443]},
             {"action": "allow", "protocol": "tcp", "ports": [8080, 80], "networks": ["192.0.2.0/24"]},
             {"action": "deny", "protocol": "icmp"},
             {"action": "deny"}]
    assert router_policy_problems(rules, PORTS) == []
    assert router_policy_problems([], PORTS) == []


@pytest.mark.parametrize("pattern,name,with_port,matches", [
    ("www.example.com", "www.example.com", True, True),
    ("www.example.com", "WWW.Example.COM", True, True),
    ("www.example.com", "www.example.com:8080", True, True),
    ("www.example.com", "www.example.com:8080", False, False),
    # Forms a server reads as the same name: a trailing dot, an empty port, both.
    ("www.example.com", "www.example.com.", True, True),
    ("www.example.com", "www.example.com.", False, True),
    ("www.example.com", "www.example.com:", True, True),
    ("www.example.com", "WWW.example.COM.:80", True, True),
    ("www.example.com", "www.example.com:", False, False),
    ("www.example.com", "www.example.com..", True, False),
    ("*.example.com", "A.Example.com.:8080", True, True),
    ("*.example.com", "a.example.com.", False, True),
    ("*.example.com", "example.com.", True, False),
    # Address literals never match a name.
    ("*.example.com", "[2001:db8::1].example.com", True, False),
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


def test_rules_for_udp_and_icmp_and_forwarded_tcp_ports_never_reach_envoys_chains():
    rules = [{"name": "dns", "action": "allow", "protocol": "udp", "ports": [53]},
             {"name": "ping", "action": "deny", "protocol": "icmp"},
             {"name": "ssh", "action": "allow", "protocol": "tcp", "ports": [22]},
             {"name": "db", "action": "allow", "protocol": "tcp", "ports": [5432]}]
    plan = router_policy_plan(rules, "deny", "enforce", [80], [5432], [])
    assert [c["name"] for c in plan["chains"]] == ["http-80", "l4-5432-db", "l4-5432-default"]
    assert plan["http_rbac"][80].get("matcher_list") is None, "no rule applies to port 80"
    assert plan["forward"] and plan["forward_drop_rest"]


def test_forwarded_traffic_is_policed_only_when_a_rule_can_match_it_or_the_default_denies():
    assert not router_policy_plan([], "allow", "enforce", [80])["forward"]
    assert not router_policy_plan([{"action": "deny", "hosts": ["a.example.com"]}], "allow", "enforce", [80])["forward"]
    assert router_policy_plan([{"action": "deny", "networks": ["198.51.100.0/24"]}], "allow", "enforce", [80])["forward"]
    plan = router_policy_plan([], "deny", "monitor", [80])
    assert plan["forward"] and not plan["forward_drop_rest"], "monitor mode drops nothing"


FORWARD_RULES = [
    {"name": "never", "action": "deny", "networks": ["198.51.100.0/24", "2001:db8:ff::/48"]},
    {"name": "names", "action": "allow", "hosts": ["www.example.com"]},
    {"name": "dns", "action": "allow", "protocol": "udp", "ports": [53], "networks": ["192.0.2.53/32"]},
    {"name": "ping", "action": "allow", "protocol": "icmp"},
    {"name": "web", "action": "allow", "ports": [80]},
]


def test_forward_rules_in_iptables_keep_the_order_skip_names_and_split_families():
    v4 = router_policy_forward(FORWARD_RULES, "deny", "enforce", "iptables", "ipv4")
    assert v4 == [
        '-A TPROXY-ENVOY-POLICY -d 198.51.100.0/24 -m comment --comment "tproxy.envoy: router_policy rule never (deny)" -j DROP',
        '-A TPROXY-ENVOY-POLICY -d 192.0.2.53/32 -p udp -m multiport --dports 53 -m comment '
        '--comment "tproxy.envoy: router_policy rule dns (allow)" -j ACCEPT',
        '-A TPROXY-ENVOY-POLICY -p icmp -m comment --comment "tproxy.envoy: router_policy rule ping (allow)" -j ACCEPT',
        '-A TPROXY-ENVOY-POLICY -p tcp -m multiport --dports 80 -m comment '
        '--comment "tproxy.envoy: router_policy rule web (allow)" -j ACCEPT',
        '-A TPROXY-ENVOY-POLICY -m comment --comment "tproxy.envoy: router_policy_default deny" -j DROP',
    ]
    v6 = router_policy_forward(FORWARD_RULES, "deny", "enforce", "iptables", "ipv6", "P")
    assert v6[0].startswith("-A P -d 2001:db8:ff::/48 ")
    assert not any("192.0.2.53" in line or "udp" in line for line in v6), "an IPv4-only rule is not IPv6's"
    assert '-A P -p ipv6-icmp -m comment --comment "tproxy.envoy: router_policy rule ping (allow)" -j ACCEPT' in v6


def test_forward_rules_in_monitor_mode_accept_and_say_what_they_would_deny():
    lines = router_policy_forward(FORWARD_RULES, "deny", "monitor", "iptables", "ipv4")
    assert all(line.endswith("-j ACCEPT") for line in lines)
    assert "(monitor: would deny)" in lines[0] and "(monitor: would deny)" in lines[-1]


def test_many_ports_are_split_for_multiport():
    rule = [{"action": "allow", "protocol": "tcp", "ports": list(range(1000, 1020))}]
    lines = router_policy_forward(rule, "deny", "enforce", "iptables", "ipv4")
    assert [line.split("--dports ")[1].split()[0].count(",") + 1 for line in lines[:-1]] == [15, 5]


def test_forward_rules_in_nftables_hook_forward_and_jump_for_the_sources():
    lines = router_policy_forward(FORWARD_RULES, "deny", "enforce", "nftables",
                                  sources=["192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"])
    text = "\n".join(lines)
    assert "chain forward {\n\ttype filter hook forward priority filter; policy accept;" in text
    assert '\tip saddr { 192.0.2.10/32, 192.0.2.11/32 } jump router_policy comment' in text
    assert '\tip6 saddr 2001:db8::10/128 jump router_policy comment' in text
    assert '\tip6 daddr 2001:db8::10/128 accept comment' in text
    assert '\tdrop comment "tproxy.envoy: router_policy_default deny: nothing else is forwarded"' in text
    policy = text.split("chain router_policy {\n")[1].splitlines()
    assert policy == [
        '\tip daddr 198.51.100.0/24 drop comment "tproxy.envoy: router_policy rule never (deny)"',
        '\tip6 daddr 2001:db8:ff::/48 drop comment "tproxy.envoy: router_policy rule never (deny)"',
        '\tip daddr 192.0.2.53/32 udp dport 53 accept comment "tproxy.envoy: router_policy rule dns (allow)"',
        '\tmeta l4proto { icmp, ipv6-icmp } accept comment "tproxy.envoy: router_policy rule ping (allow)"',
        '\ttcp dport 80 accept comment "tproxy.envoy: router_policy rule web (allow)"',
        '\tdrop comment "tproxy.envoy: router_policy_default deny"',
        "}",
    ]
    allow = "\n".join(router_policy_forward(FORWARD_RULES, "allow", "enforce", "nftables", sources=["192.0.2.10/32"]))
    assert "nothing else is forwarded" not in allow and allow.endswith('accept comment "tproxy.envoy: router_policy_default allow"\n}')


def test_forward_rejects_bad_settings():
    with pytest.raises(AnsibleFilterError, match="syntax"):
        router_policy_forward([], "deny", "enforce", "pf")
    with pytest.raises(AnsibleFilterError, match="family"):
        router_policy_forward([], "deny", "enforce", "iptables", "inet")


def test_the_nftables_forward_chain_leaves_the_rest_to_iptables_when_told():
    lines = router_policy_forward([], "deny", "enforce", "nftables", sources=["192.0.2.10/32"], drop_rest=False)
    assert not any("nothing else is forwarded" in line for line in lines)
    assert '\tdrop comment "tproxy.envoy: router_policy_default deny"' in lines


SOURCE_RULES = [
    {"name": "lab-only", "action": "allow", "sources": ["192.0.2.0/25", "2001:db8::/64"], "hosts": ["www.example.com"]},
    {"name": "guests-dns", "action": "allow", "sources": ["198.51.100.0/24"], "protocol": "udp", "ports": [53],
     "networks": ["192.0.2.53/32"]},
]


def test_a_rule_with_sources_matches_only_those_clients_at_envoy():
    plan = router_policy_plan(SOURCE_RULES, "deny", "enforce", [80], [], [443])
    assert chain_of(plan, 443, server_name="www.example.com", source_ip="192.0.2.10",
                    destination_ip="198.51.100.7") == "tls-443-lab-only"
    assert chain_of(plan, 443, server_name="www.example.com", source_ip="198.51.100.20",
                    destination_ip="198.51.100.7") == "tls-443-default"
    first = plan["http_rbac"][80]["matcher_list"]["matchers"][0]["predicate"]
    assert _holds(first, {"destination_port": "80", "host": "www.example.com", "source_ip": "2001:db8::10"})
    assert not _holds(first, {"destination_port": "80", "host": "www.example.com", "source_ip": "2001:db8:1::10"})
    source_input = first["and_matcher"]["predicate"][1]["single_predicate"]["input"]["typed_config"]["@type"]
    assert source_input.endswith("DirectSourceIPInput"), "the socket's peer, never X-Forwarded-For"


def test_a_rule_with_sources_matches_only_those_clients_in_the_firewall():
    v4 = router_policy_forward(SOURCE_RULES, "deny", "enforce", "iptables", "ipv4")
    assert v4[0] == ('-A TPROXY-ENVOY-POLICY -s 198.51.100.0/24 -d 192.0.2.53/32 -p udp -m multiport --dports 53 '
                     '-m comment --comment "tproxy.envoy: router_policy rule guests-dns (allow)" -j ACCEPT')
    v6 = router_policy_forward(SOURCE_RULES, "deny", "enforce", "iptables", "ipv6")
    assert len(v6) == 1, "an IPv4-only sources rule is not IPv6's"
    nft = router_policy_forward(SOURCE_RULES, "deny", "enforce", "nftables", sources=["198.51.100.0/24"])
    assert ('\tip saddr 198.51.100.0/24 ip daddr 192.0.2.53/32 udp dport 53 accept comment '
            '"tproxy.envoy: router_policy rule guests-dns (allow)"') in nft
    assert router_policy_problems([{"action": "allow", "sources": ["192.0.2.1/24"]}])
