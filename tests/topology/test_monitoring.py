"""Monitoring, proven on the lab: the alert rules and dashboard against the router's real metrics, a real
Prometheus that sees Envoy go down and come back, and learning mode from a real monitor-mode log.

One module fixture, on the shared lab (tests/topology/conftest.py):
1. site.yml with HTTP, TLS and L4 ports, the metrics listener, the access log in a file and a policy
   in monitor mode (default deny); traffic from the client (test_policy's servers on the web host).
2. playbooks/learn.yml turns that log into a router_policy; site.yml applies it in enforce mode, and
   the same traffic is sent again (all of it must pass) with traffic it never saw (which must not).
3. The router's metrics listener scraped from the client: every metric and label the alert rules and the
   dashboard read must be in it.
4. Debian's prometheus, started as its systemd unit starts it (the package's binary, user, default
   flags, /etc/prometheus/prometheus.yml and /var/lib/prometheus of the lab's client, which plays the
   monitoring host), with the rules installed by playbooks/monitoring.yml, scrapes the router every
   second. Envoy's container is stopped: TproxyEnvoyDown must go pending, then firing once its `for:`
   has passed (bounded wait, read from /api/v1/alerts); Envoy is started again and the alert must clear.
5. While the alert's `for:` runs: the role again (idempotent), then the rules removed (monitoring_state
   absent); at the end site.yml back to the defaults for the modules that follow.
"""

import json
import pwd
import subprocess
import sys
import threading
import time

import pytest
import yaml

from conftest import ADDR, ROOT, assert_ok, holder, playbook, sh
from polling import wait_until
from test_policy import HERE as POLICY_DIR, LOG, METRICS_PORT, certificate, greeting, http, log_lines, metrics, tls

sys.path.insert(0, str(ROOT / "tests" / "monitoring"))
import promql  # noqa: E402  pylint: disable=wrong-import-position

RULES = ROOT / "roles/monitoring/files/tproxy-envoy.rules.yml"
DASHBOARD = ROOT / "roles/monitoring/files/tproxy-envoy.dashboard.json"
TLS_PORT, GREET_PORT = 443, 8081
PROMETHEUS = "http://127.0.0.1:9090"
RULES_DIR = "/etc/prometheus/rules"
# Metrics that Prometheus makes itself, not the router.
PROMETHEUS_OWN = {"up"}
MONITOR_POLICY = [{"name": "blocked-host", "action": "deny", "hosts": ["blocked.example.com"]}]


def site_vars(mode, policy):
    return json.dumps({
        "router_intercept_ports": [80],
        "router_intercept_l4_ports": [GREET_PORT],
        "router_intercept_tls_ports": [TLS_PORT],
        "router_access_log": LOG,
        "router_metrics_address": ADDR["router"],
        "router_metrics_port": METRICS_PORT,
        "router_policy": policy,
        "router_policy_default": "deny",
        "router_policy_mode": mode,
    })


def traffic():
    """What the clients did while the router watched: every one must pass in monitor mode, and again
    under the learned policy. (No request with an address as its Host: learning mode allows those by
    the destination address, which would allow every name on that port; tests/unit covers it.)"""
    return {
        "http_www": http("www.example.com", "/anything/t31-www")[0],
        "http_blocked": http("blocked.example.com", "/anything/t31-blocked")[0],
        "tls_www": tls("www.example.com", TLS_PORT)[0],
        "tls_no_sni": tls(None, TLS_PORT)[0],
        "greet": greeting(GREET_PORT),
    }


PASSED = {"http_www": 200, "http_blocked": 200, "tls_www": 0, "tls_no_sni": 0,
          "greet": "hello %d\n" % GREET_PORT}


def never_seen():
    """A name the clients never sent. (On the TLS port the connection without SNI made the learned policy
    allow the web server's address, whatever the name: a networks rule.)"""
    return {"http_other": http("other.example.org", "/anything/t31-other")[0],
            "http_other_by_address": http("www.example.org", "/anything/t31-other")[0]}


# --- Prometheus on the lab's client ---------------------------------------------------------------

PROMETHEUS_CONFIG = {
    # Short intervals keep the test short; the rules are the shipped ones, `for:` included.
    "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
    "rule_files": [RULES_DIR + "/*.yml"],
    "scrape_configs": [{"job_name": "tproxy-envoy", "metrics_path": "/stats/prometheus",
                        "static_configs": [{"targets": ["%s:%d" % (ADDR["router"], METRICS_PORT)]}]}],
}


def api(path):
    out = sh("client", "curl -sS --max-time 5 '%s%s'" % (PROMETHEUS, path), check=False).stdout
    try:
        return json.loads(out)["data"]
    except (ValueError, KeyError):
        return None


def alert_state(name):
    """The state of alert ``name`` in Prometheus (pending, firing) or None."""
    data = api("/api/v1/alerts") or {"alerts": []}
    states = [a["state"] for a in data["alerts"] if a["labels"].get("alertname") == name]
    return states[0] if states else None


def start_prometheus():
    """Debian's prometheus as its unit starts it: /usr/bin/prometheus $ARGS (/etc/default/prometheus) as
    the user prometheus, here inside the client's namespaces (its own /etc, /var/lib and network)."""
    args = sh("client", ". /etc/default/prometheus; printf %s \"$ARGS\"").stdout.split()
    user = pwd.getpwnam("prometheus")
    # What the package's postinst does on a host: the data directory, owned by the daemon's user.
    sh("client", "install -d -o prometheus -g prometheus /var/lib/prometheus /var/lib/prometheus/metrics2")
    return subprocess.Popen(["nsenter", "-t", holder("client"), "-m", "-n", "-u", "-S", str(user.pw_uid),
                             "-G", str(user.pw_gid), "--", "/usr/bin/prometheus", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def watch_envoy_down(meanwhile):
    """Stop Envoy, follow TproxyEnvoyDown until it fires, start Envoy, follow it until it clears.
    ``meanwhile()`` runs in a thread during the alert's `for:` window, which the test would otherwise
    spend waiting; it must not need Envoy."""
    rule = next(r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
                if r.get("alert") == "TproxyEnvoyDown")
    hold = int(rule["for"].rstrip("m")) * 60
    seen = {"for": hold}
    stopped = time.monotonic()
    sh("router", "docker stop tproxy-envoy")
    seen["stop_seconds"] = time.monotonic() - stopped
    worker = threading.Thread(target=meanwhile)
    worker.start()
    # Bounded: the `for:` window, plus a scrape, an evaluation and the scrape timeout, and a margin.
    deadline = time.monotonic() + hold + 20
    while time.monotonic() < deadline and "firing" not in seen:
        state = alert_state("TproxyEnvoyDown")
        if state and state not in seen:
            seen[state] = time.monotonic() - stopped
        time.sleep(0.5)
    worker.join(timeout=600)
    started = time.monotonic()
    sh("router", "docker start tproxy-envoy")
    seen["cleared"] = wait_until(lambda: alert_state("TproxyEnvoyDown") is None, 30, 0.5)
    seen["clear_seconds"] = time.monotonic() - started
    return seen


@pytest.fixture(scope="module")
def monitoring(lab, tmp_path_factory):
    directory = tmp_path_factory.mktemp("monitoring")
    cert, key = certificate(directory)
    servers = subprocess.Popen(["nsenter", "-t", holder("web"), "-n", "--", sys.executable, str(POLICY_DIR / "servers.py"),
                                lab["web"], str(cert), str(key), str(directory / "events.jsonl"),
                                "--tls", str(TLS_PORT), "--greet", str(GREET_PORT)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prometheus = None
    original_config = sh("client", "cat /etc/prometheus/prometheus.yml").stdout
    result = {"steps": {}}
    mark = [time.monotonic()]

    def step(name):
        now = time.monotonic()
        result["steps"][name] = round(now - mark[0], 1)
        mark[0] = now

    try:
        assert wait_until(lambda: len(sh("web", "ss -Hltn '( sport = :%d or sport = :%d )'" % (
            TLS_PORT, GREET_PORT)).stdout.strip().splitlines()) == 2, 20, 0.2), "servers.py did not listen (setup)"
        started = mark[0] = time.monotonic()

        # 1. Monitor mode: the log shows what an enforced policy would deny.
        sh("router", "rm -f %s %s.1" % (LOG, LOG))
        assert_ok(playbook("site", "-e", site_vars("monitor", MONITOR_POLICY)))
        result["monitor"] = traffic()
        assert wait_until(lambda: len(log_lines()) >= len(PASSED), 30, 1.0), log_lines()
        result["monitor_log"] = log_lines()
        step("site.yml monitor mode, traffic, log")

        # 2. Learning mode: the playbook writes the report and policy on the controller.
        learned = playbook("learn", "-e", "learn_hosts=router", "-e", "learn_log=%s" % LOG,
                           "-e", "learn_output_dir=%s" % directory)
        assert_ok(learned)
        result["learned"] = yaml.safe_load((directory / "router.yml").read_text())
        step("learn.yml")
        assert_ok(playbook("site", "-e", site_vars("enforce", result["learned"]["router_policy"])))
        result["enforce"] = traffic()
        result["never_seen"] = never_seen()
        step("site.yml learned policy enforced, traffic")

        # 3. What the router really exports (enforce mode: every kind of chain exists).
        result["metrics"] = metrics()

        # 4. Prometheus with the shipped rules, installed by the collection's playbook.
        sh("client", "cat > /etc/prometheus/prometheus.yml <<'EOF'\n%s\nEOF" % yaml.safe_dump(PROMETHEUS_CONFIG))
        install = playbook("monitoring", "-e", "monitoring_hosts=client", "-e", "monitoring_prometheus_service=")
        assert_ok(install)
        result["installed"] = sh("client", "cat %s/tproxy-envoy.rules.yml" % RULES_DIR).stdout
        step("monitoring.yml")
        prometheus = start_prometheus()
        ready = time.monotonic()
        assert wait_until(lambda: (api('/api/v1/query?query=up%7Bjob%3D%22tproxy-envoy%22%7D') or {}).get("result")
                          and api('/api/v1/query?query=up%7Bjob%3D%22tproxy-envoy%22%7D')["result"][0]["value"][1] == "1",
                          60, 0.5), "Prometheus never scraped the router (setup)"
        result["rules_loaded"] = sorted(r["name"] for g in api("/api/v1/rules")["groups"] for r in g["rules"])
        # A rule evaluation before the first scrape finds no `up` series: TproxyEnvoyMetricsAbsent goes
        # pending until the next evaluation sees the target. Read the alerts after that one (bounded).
        wait_until(lambda: all(a["labels"]["alertname"] != "TproxyEnvoyMetricsAbsent"
                               for a in api("/api/v1/alerts")["alerts"]), 15, 0.5)
        result["alerts_before"] = api("/api/v1/alerts")["alerts"]
        result["ready_seconds"] = time.monotonic() - ready
        step("Prometheus up, first scrape")

        def meanwhile():
            """5. The role again (nothing to change), then removal: Prometheus keeps the rules it loaded."""
            again = ("monitoring", "-e", "monitoring_hosts=client", "-e", "monitoring_prometheus_service=")
            result["install_again"] = playbook(*again)
            result["removal"] = playbook(*again, "-e", "monitoring_state=absent")
            result["after_removal"] = sh("client", "ls %s" % RULES_DIR).stdout

        result["down"] = watch_envoy_down(meanwhile)
        step("Envoy down: alert fires and clears (monitoring.yml again and absent meanwhile)")
        result["seconds"] = time.monotonic() - started
        yield result
    finally:
        if prometheus is not None:
            prometheus.kill()
            prometheus.wait(timeout=30)
        servers.kill()
        servers.wait(timeout=30)
        sh("client", "cat > /etc/prometheus/prometheus.yml <<'EOF'\n%sEOF" % original_config, check=False)
        sh("router", "docker start tproxy-envoy", check=False)
        assert_ok(playbook("site"))


def test_monitor_mode_passed_everything_and_logged_what_enforce_would_deny(monitoring):
    assert monitoring["monitor"] == PASSED
    blocked = [x for x in monitoring["monitor_log"] if x.get("path") == "/anything/t31-blocked"]
    assert [(x["policy_decision"], x["policy_rule"]) for x in blocked] == [("denied", "blocked-host")]


def test_the_learned_policy_enforced_allows_the_same_traffic_and_nothing_unseen(monitoring):
    learned = monitoring["learned"]
    report = learned["report"]
    assert report["entries"] == len(monitoring["monitor_log"]) and report["modes"] == ["monitor"]
    assert {"name": "blocked.example.com:80", "count": 1, "rules": ["blocked-host"]} in report["denied"]
    assert [c["client"] for c in report["clients"]] == [ADDR["client"]]
    print("learned router_policy:", json.dumps(learned["router_policy"]))
    assert monitoring["enforce"] == PASSED, "the learned policy must allow what the clients did"
    assert monitoring["never_seen"] == {"http_other": 403, "http_other_by_address": 403}


def _exported(text):
    """{metric name: label names} of a Prometheus text exposition."""
    names = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _brace, rest = line.partition("{")
        labels = {part.split("=", 1)[0].strip() for part in rest.rpartition("}")[0].split('",') if "=" in part}
        names.setdefault(name.split()[0], set()).update(labels)
    return names


def _read_by_rules_and_dashboard():
    exprs = [("rule " + r.get("alert", r.get("record", "")), r["expr"])
             for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    board = json.loads(DASHBOARD.read_text())
    exprs += [("panel " + p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    exprs += [("variable " + v["name"], v["query"]["query"].partition("(")[2].rpartition(",")[0])
              for v in board["templating"]["list"] if isinstance(v.get("query"), dict)]
    return exprs


def test_every_metric_and_label_the_rules_and_dashboard_read_is_exported_by_the_router(monitoring):
    code, text = monitoring["metrics"]
    assert code == 0 and "# TYPE envoy_" in text
    exported = _exported(text)
    missing = []
    read = 0
    for where, expr in _read_by_rules_and_dashboard():
        for name, labels in promql.selectors(expr).items():
            read += 1
            if name in PROMETHEUS_OWN:
                continue
            if name not in exported:
                missing.append("%s reads %s, which the router does not export" % (where, name))
                continue
            # job and instance are the scrape's own labels.
            unknown = labels - exported[name] - {"job", "instance"}
            if unknown:
                missing.append("%s matches %s on %s, labels it does not carry" % (where, name, sorted(unknown)))
    assert not missing, "\n".join(missing)
    assert read > 40, "the expressions must have been read (%d selectors)" % read


def test_prometheus_loads_the_installed_rules_and_the_install_is_idempotent(monitoring):
    assert monitoring["installed"] == RULES.read_text()
    assert_ok(monitoring["install_again"], changed=0)
    expected = sorted(r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"])
    assert monitoring["rules_loaded"] == expected
    assert [a["labels"]["alertname"] for a in monitoring["alerts_before"]] == [], \
        "nothing fires on a healthy router: %s" % monitoring["alerts_before"]


def test_envoy_down_fires_after_its_for_window_and_clears_when_envoy_is_back(monitoring):
    seen = monitoring["down"]
    print("TproxyEnvoyDown: pending after %.1f s, firing after %.1f s (for: %d s), cleared %.1f s after the start"
          % (seen.get("pending", -1), seen.get("firing", -1), seen["for"], seen["clear_seconds"]))
    assert "pending" in seen and seen["pending"] < 10, seen
    assert "firing" in seen, "TproxyEnvoyDown did not fire within its for: window and 20 s: %s" % seen
    assert seen["firing"] >= seen["for"], "fired before its for: window: %s" % seen
    assert seen["firing"] - seen["pending"] >= seen["for"] - 1.5, "pending for less than its for: window: %s" % seen
    assert seen["cleared"], "TproxyEnvoyDown still active 30 s after Envoy was started again: %s" % seen


def test_removing_the_rules_removes_exactly_the_file_it_installed(monitoring):
    assert_ok(monitoring["removal"])
    assert monitoring["after_removal"].strip() == ""
    print("test_monitoring: %.0f s before the final site.yml: %s" % (monitoring["seconds"], monitoring["steps"]))
