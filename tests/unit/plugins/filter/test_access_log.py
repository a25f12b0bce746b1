"""Learning mode: the access log turned into a report and a router_policy (plugins/filter/access_log.py).

The learned policy is checked the way the router applies it: compiled by router_policy_plan (the
role's own translation into Envoy's matchers), then each logged request or connection is run
through those matchers (test_router_policy's walk through Envoy's matchers) in enforce mode with the
default deny: everything the log shows must be allowed, and a destination it does not show denied.
"""

import json

import pytest
# The walk through Envoy's matchers that the router policy's own tests use.
from ansible_collections.tproxy.envoy.tests.unit.plugins.filter.test_router_policy import chain_of, rbac_of

from ansible.errors import AnsibleFilterError
from ansible_collections.tproxy.envoy.plugins.filter.access_log import access_log_policy, access_log_report
from ansible_collections.tproxy.envoy.plugins.filter.router_policy import router_policy_plan, router_policy_problems


def line(mode, dest, port, client="192.0.2.10", host=None, sni=None, decision="allowed", rule="default", **extra):
    entry = {"time": "2026-12-07T10:00:00.000Z", "mode": mode, "client_address": client, "client_port": 40000,
             "destination_address": dest, "destination_port": port, "method": "GET" if mode == "http" else None,
             "host": host, "path": "/" if mode == "http" else None, "sni": sni, "status": 200 if mode == "http" else None,
             "details": "via_upstream", "upstream": "%s:%d" % (dest, port), "bytes_received": 10, "bytes_sent": 100,
             "duration_ms": 1, "response_flags": "-", "policy_decision": decision, "policy_rule": rule,
             "policy_mode": "monitor"}
    entry.update(extra)
    return json.dumps(entry)


# A monitor-mode log as `docker logs` shows it: Envoy's own log lines between the access log's,
# fields this code does not know (a newer format), a cut last line.
LOG = "\n".join([
    "[2026-12-07 10:00:00.000][1][info][main] [source/server/server.cc:1] starting main dispatch loop",
    line("http", "192.0.2.180", 80, host="www.example.com"),
    line("http", "192.0.2.180", 80, host="WWW.Example.com:80", policy_rule_source="lds v7"),
    line("http", "192.0.2.181", 80, client="192.0.2.11", host="blocked.example.com", decision="denied",
         rule="blocked-host"),
    line("http", "192.0.2.180", 80, host="192.0.2.180"),
    line("http", "2001:db8::180", 80, client="2001:db8::10", host="[2001:db8::180]"),
    line("http", "192.0.2.180", 8080, host="api.example.net:8080"),
    line("tls", "198.51.100.7", 443, sni="api.example.net"),
    line("tls", "198.51.100.8", 443, sni=None, decision="denied", rule="default"),
    line("l4", "203.0.113.16", 22, client="192.0.2.11"),
    line("l4", "203.0.113.16", 22, client="192.0.2.11", bytes_sent="7"),
    '{"time": "2026-12-07T10:00:09',
])


def test_the_report_ranks_destinations_denials_and_clients_and_skips_what_is_not_the_access_log():
    report = access_log_report(LOG)
    assert (report["entries"], report["skipped"], report["modes"]) == (10, 2, ["monitor"])
    top = report["top_destinations"]
    assert top[:2] == [{"name": "203.0.113.16:22", "count": 2}, {"name": "www.example.com:80", "count": 2}], \
        "most first, then by name; Host case and :port folded into one name"
    assert {"name": "192.0.2.180:80", "count": 1} in top
    assert {"name": "[2001:db8::180]:80", "count": 1} in top and {"name": "198.51.100.8:443", "count": 1} in top
    assert report["denied"] == [{"name": "198.51.100.8:443", "count": 1, "rules": ["default"]},
                                {"name": "blocked.example.com:80", "count": 1, "rules": ["blocked-host"]}]
    clients = {c["client"]: c for c in report["clients"]}
    assert clients["192.0.2.10"] == {"client": "192.0.2.10", "count": 6, "denied": 1,
                                     "bytes_received": 60, "bytes_sent": 600}
    assert clients["192.0.2.11"]["count"] == 3 and clients["192.0.2.11"]["bytes_sent"] == 207
    assert report["clients"][0]["client"] == "192.0.2.10", "most first"
    assert len(access_log_report(LOG, 1)["top_destinations"]) == 1


def test_the_learned_policy_allows_names_per_port_and_addresses_where_no_name_is_seen():
    policy = access_log_policy(LOG)
    assert policy == [
        {"name": "learned-22-networks", "action": "allow", "networks": ["203.0.113.16/32"], "ports": [22]},
        {"name": "learned-80-hosts", "action": "allow", "hosts": ["blocked.example.com", "www.example.com"], "ports": [80]},
        {"name": "learned-80-networks", "action": "allow", "networks": ["192.0.2.180/32", "2001:db8::180/128"],
         "ports": [80]},
        {"name": "learned-443-hosts", "action": "allow", "hosts": ["api.example.net"], "ports": [443]},
        {"name": "learned-443-networks", "action": "allow", "networks": ["198.51.100.8/32"], "ports": [443]},
        {"name": "learned-8080-hosts", "action": "allow", "hosts": ["api.example.net"], "ports": [8080]},
    ]
    assert router_policy_problems(policy, [22, 80, 443, 8080]) == []


def test_include_denied_false_leaves_out_what_the_current_policy_denies():
    policy = access_log_policy(LOG, include_denied=False, prefix="seen")
    hosts80 = next(rule for rule in policy if rule["name"] == "seen-80-hosts")
    assert hosts80["hosts"] == ["www.example.com"]
    assert "seen-443-networks" not in [rule["name"] for rule in policy]


def test_parsed_lines_and_lists_of_lines_read_like_text():
    lines = LOG.splitlines()
    assert access_log_policy(lines) == access_log_policy(LOG)
    assert access_log_policy([json.loads(x) for x in lines[1:-1]]) == access_log_policy(LOG)
    assert access_log_report("")["entries"] == 0 and access_log_policy("") == []


@pytest.mark.parametrize("log, prefix", [(42, "learned"), (LOG, "bad prefix"), (LOG, "")])
def test_bad_input_is_an_error_that_says_what_was_wrong(log, prefix):
    with pytest.raises(AnsibleFilterError, match="access log must be|prefix must be"):
        access_log_policy(log, prefix=prefix)


# --- the learned policy, applied ------------------------------------------------------------------

def decide(plan, entry):
    """allowed or denied: what the router, given ``plan``, does to the request or connection ``entry``."""
    port = entry["destination_port"]
    if entry["mode"] == "http":
        action = rbac_of(plan, port, entry["host"], destination_ip=entry["destination_address"],
                         source_ip=entry["client_address"])[1]
        return "allowed" if action == "ALLOW" else "denied"
    name = chain_of(plan, port, destination_ip=entry["destination_address"], server_name=entry["sni"])
    return "denied" if next(c for c in plan["chains"] if c["name"] == name)["deny"] else "allowed"


def test_the_learned_policy_enforced_with_default_deny_allows_every_logged_request_and_nothing_else():
    entries = [json.loads(x) for x in LOG.splitlines()[1:-1]]
    plan = router_policy_plan(access_log_policy(LOG), default="deny", mode="enforce",
                              http_ports=[80, 8080], l4_ports=[22], tls_ports=[443])
    assert [decide(plan, entry) for entry in entries] == ["allowed"] * len(entries)
    unseen = [
        # 192.0.2.180:80 was reached by its address (a Host of 192.0.2.180): allowed by address, any name.
        json.loads(line("http", "192.0.2.181", 80, host="other.example.org")),
        json.loads(line("http", "192.0.2.180", 8080, host="www.example.com")),  # seen on port 80 only
        json.loads(line("tls", "198.51.100.7", 443, sni="www.example.com")),
        json.loads(line("tls", "198.51.100.9", 443, sni=None)),
        json.loads(line("l4", "203.0.113.17", 22)),
    ]
    assert [decide(plan, entry) for entry in unseen] == ["denied"] * len(unseen)
