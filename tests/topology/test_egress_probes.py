"""Egress probes: what a client gets past the router's policy, tried with raw sockets.

A security reviewer's attempts, each as a probe from the client (egress/probe.py: plain TCP and UDP
sockets, ICMP and ICMPv6 echo on raw sockets, HTTP requests written byte for byte), in both families,
on both firewall backends, under both defaults and both modes:

- forwarded traffic (what the router does not intercept): TCP to a port nobody intercepts, UDP/443
  (QUIC), UDP/53 (the resolver a rule allows), ICMP echo (a rule allows it to the web host);
- a network the policy denies (a second address of the web host) is denied on every port and
  protocol, intercepted HTTP included;
- the Host forms a server reads as the same name (case, trailing dot, an empty or default port) and
  address literals, against a deny rule, an allow rule and the default;
- a policy change reaches open connections: after the last run, two long L4 connections are open
  (one per family, both allowed); site.yml adds a rule that denies the IPv4 one; it must be closed
  by the time site.yml returns, and the IPv6 one must stay open;
- the access log: the client's address from the socket whatever X-Forwarded-For says, a decision for
  requests Envoy refuses before the policy (no Host, CONNECT), and a line of JSON for every request
  however hostile its bytes (quotes, backslashes, control bytes, a 90 KiB path).

The web host runs egress/sink.py (TCP 8080, UDP 443 and 53, both families), which records what
arrives, so a probe that got no answer is told apart from one that never arrived. One lab; the
backend is switched once (nftables, then iptables); the defaults come back at the end.
"""

import json
import pathlib
import subprocess
import sys
import time

import pytest

from conftest import ADDR, ADDR6, assert_ok, holder, playbook, sh
from polling import wait_until

HERE = pathlib.Path(__file__).resolve().parent / "egress"
LOG = "/var/log/tproxy-envoy-probes/access.log"
# A second address of the web host, on a network the policy denies (the lab's layout is untouched:
# the fixture adds it and the client's route to it through the router, and removes both).
EXTRA = {"ipv4": "192.0.2.181", "ipv6": "2001:db8::181"}
# An L4 port (intercepted, forwarded byte for byte) whose server keeps the connection open, and the
# access log's flush interval: a connection held longer is logged while it lasts.
LINGER_PORT, FLUSH_SECONDS, LINGER_SECONDS = 8081, 2, 7
FAMILIES = {"ipv4": ADDR["web"]} | ({"ipv6": ADDR6["web"]} if ADDR6.get("web") else {})
POLICY = [
    {"name": "never-181", "action": "deny", "networks": ["192.0.2.181/32", "2001:db8::181/128"]},
    {"name": "blocked", "action": "deny", "hosts": ["blocked.example"]},
    {"name": "allowed", "action": "allow", "hosts": ["allowed.example"]},
    {"name": "l4", "action": "allow", "ports": [LINGER_PORT]},
    {"name": "dns", "action": "allow", "protocol": "udp", "ports": [53]},
    {"name": "ping", "action": "allow", "protocol": "icmp",
     "networks": ["%s/32" % ADDR["web"]] + (["%s/128" % ADDR6["web"]] if ADDR6.get("web") else [])},
]
# Host headers a server reads as the name of the rule (RFC 9110 §4.2.3: case; DNS: the trailing dot
# of a fully qualified name; an empty or the default port).
SAME_NAME = ["{n}", "{N}:80", "{n}.", "{n}:", "{n}.:80", "{N}.:", "{n}:080"]
BLOCKED_FORMS = [f.format(n="blocked.example", N="BLOCKED.Example") for f in SAME_NAME]
ALLOWED_FORMS = [f.format(n="allowed.example", N="Allowed.EXAMPLE") for f in SAME_NAME]
# Neither name: an address literal (a rule holds names only), a longer name, the name as a label.
OTHER_FORMS = ["%s" % ADDR["web"], "%s:80" % ADDR["web"], "[%s]" % ADDR6.get("web", "2001:db8::180"),
               "[%s]:80" % ADDR6.get("web", "2001:db8::180"), "allowed.example.evil", "x.allowed.example",
               "allowed-example"]
# Per client address and family; the probes of a run hold fewer at once.
CONNECTION_LIMIT = 64
CONFIGS = [
    # (name, backend, default, mode); the first sets the access log file (a new Envoy process).
    ("nftables-deny", "nftables", "deny", "enforce"),
    ("nftables-allow", "nftables", "allow", "enforce"),
    ("nftables-monitor", "nftables", "deny", "monitor"),
    ("iptables-deny", "iptables", "deny", "enforce"),
    ("iptables-allow", "iptables", "allow", "enforce"),
]


# The policy change of the open-connections probe: the IPv4 web host's L4 port denied, first.
CUT_RULE = {"name": "cut-l4-v4", "action": "deny", "networks": ["%s/32" % ADDR["web"]], "ports": [LINGER_PORT]}
# Slack after site.yml returns for the client to see the reset the router sent before it returned.
CLOSE_SLACK_SECONDS = 1.0


def site_vars(backend, default, mode, policy=None):
    return json.dumps({"router_firewall_backend": backend, "router_policy": POLICY if policy is None else policy, "router_policy_default": default,
                       "router_policy_mode": mode, "router_access_log": LOG, "router_metrics_address": ADDR["router"],
                       "router_client_connection_limit": CONNECTION_LIMIT, "router_intercept_l4_ports": [LINGER_PORT],
                       "router_access_log_flush_seconds": FLUSH_SECONDS})


def http_request(host, path, extra=""):
    return "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n" % (path, host, extra)


def probes(run):
    """Every probe of one run, each with an id that its results and log lines carry."""
    result = []
    for fam, web in FAMILIES.items():
        extra = EXTRA[fam]
        result += [
            {"id": "tcp8080-%s" % fam, "kind": "tcp", "addr": web, "port": 8080},
            {"id": "udp443-%s-%s" % (fam, run), "kind": "udp", "addr": web, "port": 443},
            {"id": "udp53-%s-%s" % (fam, run), "kind": "udp", "addr": web, "port": 53},
            {"id": "icmp-%s-%s" % (fam, run), "kind": "icmp", "addr": web},
            {"id": "x-udp53-%s-%s" % (fam, run), "kind": "udp", "addr": extra, "port": 53},
            {"id": "x-icmp-%s-%s" % (fam, run), "kind": "icmp", "addr": extra},
            {"id": "x-http-%s" % fam, "kind": "http", "addr": extra, "port": 80,
             "request": http_request("allowed.example", "/anything/%s-x-http-%s" % (run, fam))},
        ]
        for group, forms in (("blocked", BLOCKED_FORMS), ("allowed", ALLOWED_FORMS), ("other", OTHER_FORMS)):
            for index, host in enumerate(forms):
                ident = "host-%s-%d-%s" % (group, index, fam)
                result.append({"id": ident, "kind": "http", "addr": web, "port": 80, "host": host,
                               "request": http_request(host, "/anything/%s-%s" % (run, ident))})
    return result


def expected(default, mode):
    """What each probe must get: the policy's decision, whatever the backend and the family."""
    enforce = mode == "enforce"
    deny = default == "deny" and enforce
    want = {}
    for fam in FAMILIES:
        want.update({
            "tcp8080-%s" % fam: "blocked" if deny else "open",
            "udp443-%s" % fam: "blocked" if deny else "open",
            "udp53-%s" % fam: "open",
            "icmp-%s" % fam: "open",
            "x-udp53-%s" % fam: "blocked" if enforce else "open",
            "x-icmp-%s" % fam: "blocked" if enforce else "open",
            "x-http-%s" % fam: 403 if enforce else 200,
        })
        for group, forms, status in (("blocked", BLOCKED_FORMS, 403 if enforce else 200),
                                     ("allowed", ALLOWED_FORMS, 200),
                                     ("other", OTHER_FORMS, 403 if deny else 200)):
            want.update({"host-%s-%d-%s" % (group, i, fam): status for i in range(len(forms))})
    return want


def run_probes(items):
    proc = subprocess.run(["nsenter", "-t", holder("client"), "-n", "--", sys.executable, str(HERE / "probe.py")],
                          input=json.dumps(items), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def outcomes(results, run):
    """Results by the probe's run-independent name; HTTP by status."""
    return {ident.replace("-" + run, ""): (value[0] if isinstance(value, list) else value)
            for ident, value in results.items()}


def log_text():
    return sh("router", "cat %s 2>/dev/null" % LOG, check=False).stdout


def log_lines():
    return [json.loads(line) for line in log_text().splitlines()]


def sink_events(events):
    return [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []


@pytest.fixture(scope="module")
def extra_address(lab):
    """A second address of the web host, routed by the client through the router like the first."""
    added = []
    for fam, address in EXTRA.items():
        if fam not in FAMILIES:
            continue
        bits, via = (32, ADDR["router"]) if fam == "ipv4" else (128, ADDR6["router"])
        sh("web", "ip addr add %s/%d dev eth0 %s" % (address, bits, "nodad" if fam == "ipv6" else ""))
        sh("client", "ip route add %s/%d via %s" % (address, bits, via))
        added.append((address, bits))
    yield
    for address, bits in added:
        sh("client", "ip route del %s/%d" % (address, bits), check=False)
        sh("web", "ip addr del %s/%d dev eth0" % (address, bits), check=False)


@pytest.fixture(scope="module")
def runs(extra_address, tmp_path_factory):
    events = tmp_path_factory.mktemp("egress") / "events.jsonl"
    sink = subprocess.Popen(["nsenter", "-t", holder("web"), "-n", "--", sys.executable, str(HERE / "sink.py"),
                             str(events), "--tcp", "8080", "--udp", "443", "53", "--hold", str(LINGER_PORT)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {}
    started = time.monotonic()
    try:
        assert wait_until(lambda: len(sh("web", "ss -Hltun '( sport = :8080 or sport = :443 or sport = :53 or sport = :%d )'"
                                         % LINGER_PORT).stdout.strip().splitlines()) >= 8, 20, 0.2), \
            "sink.py did not listen (test setup)"
        for name, backend, default, mode in CONFIGS:
            assert_ok(playbook("site", "-e", site_vars(backend, default, mode)))
            before = len(sink_events(events))
            items = probes(name)
            if name == "iptables-deny":
                items += log_probes() + exposure_probes() + [
                    {"id": "linger", "kind": "linger", "addr": ADDR["web"], "port": LINGER_PORT, "seconds": LINGER_SECONDS}]
            raw = run_probes(items)
            result[name] = {"results": outcomes(raw, name), "raw": raw, "want": expected(default, mode),
                            "arrived": sink_events(events)[before:]}
            if name.endswith("-deny"):
                # Alone: the other probes' connections would count too.
                result[name]["held"] = run_probes([{"id": "hold-%s" % fam, "kind": "hold", "addr": web, "port": 80,
                                                    "count": CONNECTION_LIMIT + 16} for fam, web in FAMILIES.items()])
        result["policy_change"] = policy_change(CONFIGS[-1][1:], tmp_path_factory.mktemp("watch") / "stop")
        wait_until(lambda: all(any(line.get("path", "") and ident in line["path"] for line in log_lines())
                               for ident in ("iptables-allow-host-other-0",)), 30, 1.0)
        result["log_text"] = log_text()
        result["container"] = json.loads(sh("router", "docker inspect -f '{{json .HostConfig}}' tproxy-envoy").stdout)
        result["seconds"] = time.monotonic() - started
        yield result
    finally:
        sink.kill()
        sink.wait(timeout=30)
        assert_ok(playbook("site"))


def policy_change(config, stop_file):
    """Long L4 connections (one per family, allowed by the rule l4) open while site.yml adds CUT_RULE
    (IPv4 only): when each was closed, and when site.yml started and returned."""
    watch = [{"id": "watch-%s" % fam, "kind": "watch", "addr": web, "port": LINGER_PORT, "seconds": 600,
              "stop_file": str(stop_file)} for fam, web in FAMILIES.items()]
    request = stop_file.with_name("watch.json")
    request.write_text(json.dumps(watch))
    with request.open() as stdin:
        probe = subprocess.Popen(["nsenter", "-t", holder("client"), "-n", "--", sys.executable, str(HERE / "probe.py")],
                                 stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Both connections through Envoy before the change (its downstream sockets on the router).
        opened = wait_until(lambda: len(sh("router", "ss -tnH state established '( sport = :%d )'"
                                           % LINGER_PORT).stdout.splitlines()) >= len(watch), 10, 0.2)
        started = time.time()
        run = playbook("site", "-e", site_vars(*config, policy=[CUT_RULE] + POLICY))
        returned = time.time()
        time.sleep(CLOSE_SLACK_SECONDS)
    finally:
        stop_file.touch()
        out, err = probe.communicate(timeout=60)
    assert_ok(run)
    assert probe.returncode == 0, err
    return {"opened": opened, "started": started, "returned": returned, "results": json.loads(out)}


# --- forwarded traffic, networks, names: one table of expectations per run ---------------------

@pytest.mark.parametrize("name", [c[0] for c in CONFIGS])
def test_nothing_passes_that_the_policy_did_not_allow(runs, name):
    seen = runs[name]
    wrong = {k: (seen["results"].get(k), v) for k, v in seen["want"].items() if seen["results"].get(k) != v}
    assert not wrong, "probe: (got, wanted) %s" % json.dumps(wrong, indent=1)


@pytest.mark.parametrize("name", ["nftables-deny", "iptables-deny"])
def test_a_dropped_probe_never_reached_the_web_host(runs, name):
    arrived = runs[name]["arrived"]
    tokens = {e.get("token") for e in arrived if e["proto"] == "udp"}
    assert not any(t and (t.startswith("udp443-") or t.startswith("x-udp53-")) for t in tokens), arrived
    assert all(t in tokens for t in ("udp53-%s-%s" % (fam, name) for fam in FAMILIES)), arrived
    assert not [e for e in arrived if e["proto"] == "tcp" and e["port"] == 8080], "TCP to port 8080 arrived at the web host"


# --- a policy change and open connections -------------------------------------------------------

def test_a_policy_change_closes_the_open_connections_it_denies_and_no_others(runs):
    seen = runs["policy_change"]
    assert seen["opened"], "the watched connections never went through Envoy (test setup): %s" % seen
    greeting, closed = seen["results"]["watch-ipv4"]
    assert greeting == "tcp-ok %d\n" % LINGER_PORT, seen
    assert closed is not None, "the connection the new policy denies was still open %.1f s after site.yml returned" % (
        CLOSE_SLACK_SECONDS)
    assert seen["started"] < closed <= seen["returned"] + CLOSE_SLACK_SECONDS, seen
    print("closed %.1f s after site.yml started (site.yml took %.1f s)"
          % (closed - seen["started"], seen["returned"] - seen["started"]))
    assert "ipv6" in FAMILIES, "the unaffected connection is the IPv6 one: the lab must be dual stack"
    for fam in set(FAMILIES) - {"ipv4"}:
        greeting, closed = seen["results"]["watch-%s" % fam]
        assert (greeting, closed) == ("tcp-ok %d\n" % LINGER_PORT, None), "a connection the policy still allows was closed"


# --- the access log ---------------------------------------------------------------------------

def log_probes():
    """Requests that try to forge the log or break its lines (sent with the iptables-deny run)."""
    web = ADDR["web"]
    control = "".join(chr(c) for c in range(1, 32) if c not in (10, 13))
    return [
        {"id": "log-xff", "kind": "http", "addr": web, "port": 80,
         "request": http_request("allowed.example", "/anything/log-xff",
                                 "X-Forwarded-For: 203.0.113.66, 198.51.100.1\r\nX-Real-IP: 203.0.113.67\r\n")},
        {"id": "log-no-host", "kind": "http", "addr": web, "port": 80,
         "request": "GET /anything/log-no-host HTTP/1.1\r\nConnection: close\r\n\r\n"},
        {"id": "log-connect", "kind": "http", "addr": web, "port": 80,
         "request": "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (web, web)},
        {"id": "log-quotes", "kind": "http", "addr": web, "port": 80,
         "request": http_request("allowed.example", '/anything/log-quotes/"q"\\b\\"}{\\u0000%22',
                                 'X-Note: "},{"client_address":"203.0.113.66\\\r\n')},
        {"id": "log-control", "kind": "http", "addr": web, "port": 80,
         "request": http_request("allowed.example", "/anything/log-control/" + control + "\x7f\xff")},
        {"id": "log-control-host", "kind": "http", "addr": web, "port": 80,
         "request": http_request('allowed.example"\x01\\', "/anything/log-control-host")},
        {"id": "log-long", "kind": "http", "addr": web, "port": 80,
         "request": http_request("allowed.example", "/anything/log-long/" + "a" * (90 * 1024))},
    ]


def log_line(lines, marker):
    found = [line for line in lines if marker in (line.get("path") or "")]
    assert len(found) == 1, (marker, [line for line in lines if line.get("mode") == "http"][-20:])
    return found[0]


def test_every_line_of_the_log_is_json_with_bounded_fields(runs):
    lines = runs["log_text"].splitlines()
    assert len(lines) > 100
    parsed = [json.loads(line) for line in lines]  # raises on the first line that is not JSON
    assert max(len(line) for line in lines) < 4096
    long_line = log_line(parsed, "/anything/log-long/")
    raw = runs["iptables-deny"]["raw"]
    # Under Envoy's request head limit: forwarded, and answered by the server (httpbin's gunicorn: 414).
    assert len(long_line["path"]) == 2048 and long_line["upstream"] and long_line["status"] == raw["log-long"][0] > 0
    quotes = log_line(parsed, "/anything/log-quotes/")
    if raw["log-quotes"][0] == 200:
        assert quotes["path"] == '/anything/log-quotes/"q"\\b\\"}{\\u0000%22'
    assert quotes["client_address"] == ADDR["client"]


def test_a_long_l4_connection_is_logged_while_it_lasts(runs):
    greeting, port = runs["iptables-deny"]["raw"]["linger"]
    assert greeting == "tcp-ok %d\n" % LINGER_PORT, greeting
    parsed = [json.loads(line) for line in runs["log_text"].splitlines()]
    lines = [line for line in parsed if line["mode"] == "l4" and line["client_port"] == port]
    events = [line["event"] for line in lines]
    assert events.count("TcpPeriodic") >= LINGER_SECONDS // FLUSH_SECONDS - 1 and events[-1] == "TcpConnectionEnd", lines
    assert all((line["policy_decision"], line["policy_rule"]) == ("allowed", "l4") for line in lines), lines


def test_the_client_address_comes_from_the_socket_never_a_header(runs):
    parsed = [json.loads(line) for line in runs["log_text"].splitlines()]
    xff = log_line(parsed, "/anything/log-xff")
    assert (xff["client_address"], xff["status"]) == (ADDR["client"], 200), xff
    assert isinstance(xff["client_port"], int) and xff["client_port"] > 1023, xff
    assert not [line for line in parsed if line["client_address"] in ("203.0.113.66", "203.0.113.67")]


def test_requests_refused_before_the_policy_have_a_decision(runs):
    parsed = [json.loads(line) for line in runs["log_text"].splitlines()]
    raw = runs["iptables-deny"]["raw"]
    assert raw["log-no-host"][0] == 400 and raw["log-connect"][0] in (400, 403, 404), raw
    no_host = log_line(parsed, "/anything/log-no-host")
    assert (no_host["status"], no_host["policy_decision"], no_host["policy_rule"]) == (400, "denied", "refused")
    connect = [line for line in parsed if line.get("method") == "CONNECT"]
    assert connect and all(line["policy_decision"] == "denied" for line in connect), connect
    assert all(line["policy_decision"] in ("allowed", "denied") and line["policy_rule"] for line in parsed), [
        line for line in parsed if line["policy_decision"] not in ("allowed", "denied") or not line["policy_rule"]][:5]


@pytest.mark.parametrize("name", ["iptables-deny", "nftables-monitor"])
def test_the_log_names_the_rule_that_decided_each_host_form(runs, name):
    parsed = [json.loads(line) for line in runs["log_text"].splitlines()]
    monitor = name.endswith("monitor")
    for fam in FAMILIES:
        for group, forms, want in (("blocked", BLOCKED_FORMS, ("denied", "blocked")),
                                   ("allowed", ALLOWED_FORMS, ("allowed", "allowed")),
                                   ("other", OTHER_FORMS, ("denied", "default"))):
            for index, host in enumerate(forms):
                line = log_line(parsed, "/anything/%s-host-%s-%d-%s" % (name, group, index, fam))
                assert (line["host"], line["policy_decision"], line["policy_rule"]) == (host,) + want, line
                assert line["policy_mode"] == ("monitor" if monitor else "enforce")
                assert line["client_address"] == (ADDR["client"] if fam == "ipv4" else ADDR6["client"])


def test_the_module_time(runs):
    print("egress probes: %d site.yml runs and their probes in %.0f s" % (len(CONFIGS), runs["seconds"]))


# --- exposure -----------------------------------------------------------------------------------

def exposure_probes():
    """The metrics listener and the admin interface, from the client (sent with the iptables-deny run)."""
    router = ADDR["router"]
    return [
        {"id": "metrics", "kind": "http", "addr": router, "port": 9102,
         "request": http_request(router, "/stats/prometheus")},
        {"id": "metrics-filter", "kind": "http", "addr": router, "port": 9102,
         "request": http_request(router, "/stats/prometheus?filter=policy")},
        {"id": "metrics-usedonly", "kind": "http", "addr": router, "port": 9102,
         "request": http_request(router, "/stats/prometheus?usedonly")},
        {"id": "metrics-admin-path", "kind": "http", "addr": router, "port": 9102,
         "request": http_request(router, "/quitquitquit")},
        {"id": "admin", "kind": "tcp", "addr": router, "port": 19000},
    ]


def test_metrics_serve_only_the_plain_prometheus_page_and_admin_is_unreachable(runs):
    raw = runs["iptables-deny"]["raw"]
    assert raw["metrics"][0] == 200, raw["metrics"]
    assert [raw[k][0] for k in ("metrics-filter", "metrics-usedonly", "metrics-admin-path")] == [404, 404, 404]
    assert raw["admin"] == "refused"


@pytest.mark.parametrize("name", ["nftables-deny", "iptables-deny"])
def test_one_client_gets_no_more_connections_than_the_limit(runs, name):
    assert runs[name]["held"] == {"hold-%s" % fam: CONNECTION_LIMIT for fam in FAMILIES}


def test_envoys_container_is_read_only_and_bounded(runs):
    config = runs["container"]
    assert config["ReadonlyRootfs"] is True and config["PidsLimit"] == 1024 and config["Memory"] == 2 * 1024 ** 3
    assert config["CapAdd"] == ["CAP_NET_ADMIN"] or config["CapAdd"] == ["NET_ADMIN"], config["CapAdd"]
    # The lab's Envoy runs as nobody with the binary's file capability, which no-new-privileges would void.
    assert not config.get("SecurityOpt"), config.get("SecurityOpt")
