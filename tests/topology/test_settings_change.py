"""Every router setting changed on a running router, and back: each run passes, a rerun changes nothing.

The router plan says what each setting changes (plugins/plugin_utils/router_model.py EFFECTS): what
Envoy watches (lds.yaml, cds.yaml: applied without a restart), what it started with (a drained new
process) or the host (rules, routes, kernel settings). Three steps on the one lab, each a run and a
rerun (seven site.yml runs in all, about 2 minutes):

1. only what Envoy watches: the metrics listener on, the access log off, a policy, a port of each mode
   added. Envoy must apply it without a new process (the metrics listener's cluster is already there);
2. what needs a new process or the host: the access log to a file in another directory (a new mount), the client's
   address kept, IPv6 off, the nftables backend;
3. every setting back to its default.

After each step a request from the client through the router is served by Envoy.
"""

import json

import pytest

from conftest import ADDR, ADDR6, assert_ok, client_get, envoy_stat, playbook, sh
from polling import wait_until

# A file in a directory other than the default's: a new mount, so a new process.
ACCESS_LOG = "/var/log/tproxy-envoy-settings/access.log"
WATCHED = {
    "router_metrics_address": ADDR["router"],
    "router_access_log": "off",
    "router_policy": [{"name": "nobody", "action": "deny", "hosts": ["blocked.example.com"]}],
    "router_intercept_ports": [80, 8080],
    "router_intercept_l4_ports": [5432],
    "router_intercept_tls_ports": [443],
}
RESTART_AND_HOST = {
    "router_access_log": ACCESS_LOG,
    "router_preserve_client_address": True,
    "router_ipv6": False,
    "router_firewall_backend": "nftables",
}


def site(settings=None, changed=None):
    args = ("-e", json.dumps(settings)) if settings else ()
    return assert_ok(playbook("site", *args), changed=changed)


def envoy_started_at():
    return sh("router", "docker inspect --format '{{.State.StartedAt}}' tproxy-envoy").stdout.strip()


def served_by_envoy():
    """A request from the client to the web server is Envoy's (its counter rises), and answered."""
    before = envoy_stat("http.tproxy_80.downstream_rq_total")
    answer = client_get("http://%s/ip" % ADDR["web"])
    assert " 200 " in answer.stdout.splitlines()[0], answer.stdout + answer.stderr
    assert envoy_stat("http.tproxy_80.downstream_rq_total") == before + 1
    # The body after the head (the output's line ends are read as "\n").
    return json.loads(answer.stdout.split("\n\n", 1)[1])


def access_log_written():
    return sh("router", "cat %s" % ACCESS_LOG, check=False).stdout.strip() != ""


def metrics():
    return sh("router", "curl -s -o /dev/null -w '%%{http_code}' http://%s:9102/stats/prometheus" % ADDR["router"],
              check=False).stdout


@pytest.fixture(scope="module")
def running(lab):
    """The router with its defaults, running."""
    site()
    return envoy_started_at()


def test_what_envoy_watches_changes_without_a_new_process_and_back(running):
    site(WATCHED)
    assert envoy_started_at() == running, "a change of watched settings only must not restart Envoy"
    assert metrics() == "200"
    served_by_envoy()
    site(WATCHED, changed=0)
    site()
    assert envoy_started_at() == running
    assert metrics() != "200"
    served_by_envoy()
    site(changed=0)


def test_what_envoy_starts_with_and_the_host_change_and_back(running):
    site(RESTART_AND_HOST)
    assert envoy_started_at() != running
    seen = served_by_envoy()
    assert seen["origin"] == ADDR["client"], seen
    assert "tproxy ip to" in sh("router", "nft list table inet tproxy_envoy").stdout
    if ADDR6:
        assert "::1" not in sh("router", "ss -Hltn").stdout
    # Envoy flushes its access log file every second.
    assert wait_until(access_log_written, 10), "no access log line"
    site(RESTART_AND_HOST, changed=0)
    site()
    site(changed=0)
    assert sh("router", "nft list table inet tproxy_envoy", check=False).returncode != 0
    assert served_by_envoy()["origin"] == ADDR["router"]
