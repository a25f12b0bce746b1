"""router_policy: bad rules are refused naming the rule; good ones become Envoy matchers in order."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.filter.router_policy import (
    router_policy_forward, router_policy_plan, router_policy_problems)

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


def _in(address, ranges):
    import ipaddress
    value = ipaddress.ip_address(address)
    return [r["prefix_len"] for r in ranges
            if value.version == ipaddress.ip_address(r["address_prefix"]).version
            and value in ipaddress.ip_network("%s/%d" % (r["address_prefix"], r["prefix_len"]))]


def _most_specific(candidates, key, address):
    """Envoy's filter chain match on one address field: the chains whose ranges hold the address
    with the longest prefix, else those that name no ranges."""
    best, found = -1, []
    for chain in candidates:
        lengths = _in(address, chain["match"][key]) if address and chain["match"].get(key) else []
        if lengths and max(lengths) > best:
            best, found = max(lengths), [chain]
        elif lengths and max(lengths) == best:
            found.append(chain)
    return found or [c for c in candidates if not c["match"].get(key)]


def _wildcards(name):
    """A name's exact form, then each wildcard over one of its suffixes, longest first (as Envoy
    looks up virtual host domains and filter chain server names)."""
    labels = name.split(".")
    return [name] + ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]


def chain_of(plan, port, server_name=None, destination_ip=None, source_ip=None):
    """The filter chain Envoy picks for a connection (FilterChainMatch: destination port, the most
    specific destination network, the exact SNI then the longest wildcard, the most specific
    direct source network); None when no chain matches (Envoy closes the connection)."""
    candidates = [c for c in plan["chains"] if c["match"]["destination_port"] == port]
    candidates = _most_specific(candidates, "prefix_ranges", destination_ip)
    named = []
    for form in _wildcards(server_name.lower()) if server_name else []:
        named = [c for c in candidates if form in c["match"].get("server_names", [])]
        if named:
            break
    candidates = named or [c for c in candidates if not c["match"].get("server_names")]
    candidates = _most_specific(candidates, "direct_source_prefix_ranges", source_ip)
    assert len(candidates) <= 1, "two filter chains match alike: Envoy refuses such a listener"
    return candidates[0]["name"] if candidates else None


def _holds(predicate, inputs):
    if "and_matcher" in predicate:
        return all(_holds(p, inputs) for p in predicate["and_matcher"]["predicate"])
    if "or_matcher" in predicate:
        return any(_holds(p, inputs) for p in predicate["or_matcher"]["predicate"])
    single = predicate["single_predicate"]
    value = inputs.get(single["input"]["name"])
    if value is None:
        return False
    return bool(_in(value, single["custom_match"]["typed_config"]["cidr_ranges"]))


def virtual_host_of(plan, port, host):
    """The policy's virtual host Envoy picks for a Host header (the port ignored, an empty one too;
    any case; exact domain by hash, then the longest wildcard suffix), or None for the catch-all."""
    if host is None:
        return None
    if host.rfind(":") > host.rfind("]"):
        host = host[:host.rfind(":")]
    domains = {d: vh for vh in plan["http"][port]["virtual_hosts"] for d in vh["domains"]}
    if host.endswith("."):
        forms = [f + "." for f in _wildcards(host[:-1].lower())] if len(host) > 1 else []
    else:
        forms = _wildcards(host.lower())
    return next((domains[f] for f in forms if f in domains), None)


def rbac_of(plan, port, host, **inputs):
    """(rule, ALLOW|DENY): the RBAC action of a request (its virtual host's matcher, first match wins)."""
    vh = virtual_host_of(plan, port, host)
    tree = vh["rbac"] if vh else plan["http"][port]["rbac"]
    action = next((m["on_match"] for m in tree.get("matcher_list", {}).get("matchers", [])
                   if _holds(m["predicate"], inputs)), tree["on_no_match"])["action"]
    return action["name"], action["typed_config"]["action"]


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


def rule_of(plan, port, **inputs):
    """The rule that decides a connection (its filter chain's), or None without a chain."""
    name = chain_of(plan, port, **inputs)
    return next(c["rule"] for c in plan["chains"] if c["name"] == name) if name else None


def test_http_ports_get_virtual_hosts_by_name_each_with_the_rules_of_its_names():
    plan = router_policy_plan(RULES, "allow", "enforce", [80, 8080], [], [])
    hosts = plan["http"][80]["virtual_hosts"]
    # no-8443 and db name other ports: not on port 80's lists.
    assert [vh["domains"] for vh in hosts] == [["www.example.com", "www.example.com.", "*.example.net", "*.example.net."]]
    assert hosts[0]["rbac"] == {"on_no_match": {"action": {"name": "rule-2", "typed_config": {
        "@type": "type.googleapis.com/envoy.config.rbac.v3.Action", "name": "rule-2", "action": "ALLOW"}}}}
    assert plan["http"][80]["rbac"]["on_no_match"]["action"]["typed_config"]["action"] == "ALLOW"
    assert plan["http"][80]["rbac"]["on_no_match"]["action"]["name"] == "default"
    for host in ("www.example.com", "WWW.Example.COM:80", "www.example.com.", "www.example.com:", "api.example.net.:8080",
                 "a.b.example.net"):
        assert rbac_of(plan, 80, host) == ("rule-2", "ALLOW"), host
    for host in ("www.example.org", "example.net", "192.0.2.7", "[2001:db8::7]:80", "x.www.example.com", None):
        assert rbac_of(plan, 80, host) == ("default", "ALLOW"), host


def test_a_name_gets_every_rule_that_covers_it_in_policy_order():
    rules = [{"name": "guests", "action": "deny", "sources": ["198.51.100.0/24"]},
             {"name": "api-only", "action": "allow", "hosts": ["api.example.com"], "networks": ["203.0.113.0/24"]},
             {"name": "not-b", "action": "deny", "hosts": ["*.b.example.com"]},
             {"name": "example", "action": "allow", "hosts": ["*.example.com"]},
             {"name": "api", "action": "deny", "hosts": ["api.example.com"]}]
    plan = router_policy_plan(rules, "deny", "enforce", [80], [], [443])
    client, guest = {"source_ip": "192.0.2.10"}, {"source_ip": "198.51.100.10"}
    cases = [("api.example.com", "203.0.113.5", "api-only"), ("api.example.com", "192.0.2.80", "example"),
             ("x.b.example.com", "192.0.2.80", "not-b"), ("b.example.com", "192.0.2.80", "example"),
             ("www.example.com", "192.0.2.80", "example"), ("example.com", "192.0.2.80", "default")]
    for name, destination, rule in cases:
        assert rbac_of(plan, 80, name, destination_ip=destination, **client)[0] == rule, name
        assert rbac_of(plan, 80, name, destination_ip=destination, **guest)[0] == "guests", name
        assert rule_of(plan, 443, server_name=name, destination_ip=destination, **client) == rule, name
        assert rule_of(plan, 443, server_name=name, destination_ip=destination, **guest) == "guests", name
    assert rule_of(plan, 443, destination_ip="203.0.113.5", **client) == "default", "no SNI"


def test_ten_thousand_names_are_looked_up_not_listed_in_every_request():
    rules = [{"name": "site-%05d" % i, "action": "allow", "hosts": ["site-%05d.example.com" % i]} for i in range(10000)]
    rules.append({"name": "lab", "action": "deny", "networks": ["203.0.113.0/24"]})
    plan = router_policy_plan(rules, "deny", "enforce", [80], [], [443])
    hosts = plan["http"][80]["virtual_hosts"]
    assert len(hosts) == 10000 and all(len(vh["domains"]) == 2 for vh in hosts)
    # What a request evaluates after the lookup: its own rule, and the rules that name no hosts.
    assert max(len(vh["rbac"].get("matcher_list", {}).get("matchers", [])) for vh in hosts) == 0
    assert rbac_of(plan, 80, "site-09999.example.com.:80", destination_ip="192.0.2.80") == ("site-09999", "ALLOW")
    assert rbac_of(plan, 80, "site-10000.example.com", destination_ip="192.0.2.80") == ("default", "DENY")
    assert rbac_of(plan, 80, "other.example", destination_ip="203.0.113.80") == ("lab", "DENY")
    assert rule_of(plan, 443, server_name="SITE-00042.example.com", destination_ip="192.0.2.80") == "site-00042"
    assert rule_of(plan, 443, server_name="site-00042.example.com", destination_ip="203.0.113.80") == "site-00042"
    assert rule_of(plan, 443, server_name="other.example", destination_ip="203.0.113.80") == "lab"
    one_rule = router_policy_plan([{"name": "allowlist", "action": "allow",
                                    "hosts": ["site-%05d.example.com" % i for i in range(10000)]}],
                                  "deny", "enforce", [80], [], [443])
    assert len(one_rule["http"][80]["virtual_hosts"]) == 1
    assert [c["name"] for c in one_rule["chains"]] == ["http-80", "tls-443-allowlist", "tls-443-default"]


def test_the_connections_to_close_after_a_change_are_those_denied_whatever_the_name():
    rules = [{"name": "never", "action": "deny", "networks": ["192.0.2.181/32", "2001:db8::181/128"]},
             {"name": "cut", "action": "deny", "networks": ["192.0.2.0/24"], "sources": ["198.51.100.0/24"], "ports": [8081]},
             {"name": "names", "action": "allow", "hosts": ["www.example.com"]},
             {"name": "l4", "action": "allow", "ports": [8081]}]
    close = router_policy_plan(rules, "deny", "enforce", [80], [8081], [443])["close"]
    # Port 80 and 443: the default denies, but a name may be allowed: only never's addresses.
    assert close[0] == "sport = :80 and ( ( src 192.0.2.181/32 ) or ( src 2001:db8::181/128 ) )"
    assert close[2] == "sport = :443 and ( ( src 192.0.2.181/32 ) or ( src 2001:db8::181/128 ) )"
    # 8081: never's addresses from anyone; the rest of 192.0.2.0/24 from 198.51.100.0/24 (the
    # accepted socket's local address is the original destination, its peer the client).
    assert close[1] == ("sport = :8081 and ( ( src 192.0.2.181/32 ) or ( src 2001:db8::181/128 ) or "
                        "( src 192.0.2.0/24 and not ( src 192.0.2.181/32 ) and dst 198.51.100.0/24 ) )")
    assert router_policy_plan([], "deny", "enforce", [80], [8081], [])["close"] == ["sport = :80", "sport = :8081"]
    assert router_policy_plan(rules, "deny", "monitor", [80], [8081], [443])["close"] == [], "monitor mode closes nothing"
    assert router_policy_plan([], "allow", "enforce", [80], [8081], [])["close"] == []


def test_no_policy_means_no_rbac_and_one_chain_per_port():
    plan = router_policy_plan([], "allow", "enforce", [80], [5432], [443])
    assert plan["active"] is False and plan["http"] == {}
    assert [c["name"] for c in plan["chains"]] == ["http-80", "l4-5432-default", "tls-443-default"]
    assert [c["match"] for c in plan["chains"]] == [{"destination_port": p} for p in (80, 5432, 443)]
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
    # db takes every connection to 5432: the default has no cell left there.
    assert [c["name"] for c in plan["chains"]] == ["http-80", "l4-5432-db"]
    assert plan["http"][80] == {"virtual_hosts": [], "rbac": {"on_no_match": {"action": {"name": "default", "typed_config": {
        "@type": "type.googleapis.com/envoy.config.rbac.v3.Action", "name": "default", "action": "DENY"}}}}}, \
        "no rule applies to port 80"
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
    assert rule_of(plan, 443, server_name="www.example.com", source_ip="192.0.2.10",
                   destination_ip="198.51.100.7") == "lab-only"
    assert rule_of(plan, 443, server_name="www.example.com", source_ip="198.51.100.20",
                   destination_ip="198.51.100.7") == "default"
    assert rbac_of(plan, 80, "www.example.com", source_ip="2001:db8::10") == ("lab-only", "ALLOW")
    assert rbac_of(plan, 80, "www.example.com", source_ip="2001:db8:1::10") == ("default", "DENY")
    first = plan["http"][80]["virtual_hosts"][0]["rbac"]["matcher_list"]["matchers"][0]["predicate"]
    source_input = first["single_predicate"]["input"]["typed_config"]["@type"]
    assert source_input.endswith("DirectSourceIPInput"), "the socket's peer, never X-Forwarded-For"
    source_match = [c["match"].get("direct_source_prefix_ranges") for c in plan["chains"] if c["rule"] == "lab-only"]
    assert source_match == [[{"address_prefix": "192.0.2.0", "prefix_len": 25}],
                            [{"address_prefix": "2001:db8::", "prefix_len": 64}]], "the socket's peer, never a header"


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
