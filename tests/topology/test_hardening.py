"""Issue 7: each protection of the router, proven on the namespace lab.

The tests share one lab, but none relies on an earlier one: each asks for the lab in the state it
needs (`never_configured_lab`, `unconfigured_lab`, `converged_lab`), and the fixture gets it there
when it is not (file order needs the fewest runs: refusals and collisions on a fresh lab first,
then a converged one, then teardown next to other people's state). `--reverse-order` or `-k`
runs them in any other order.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import (ADDR, ENGINES, ROOT, assert_ok, client_get, docker_json, envoy_stat, holder, playbook,
                      playbook_process, recap, sh, snapshot)
from polling import wait_until

sys.path.insert(0, str(ROOT / "plugins" / "filter"))
from netstate_paths import netstate_paths as state_paths  # noqa: E402  pylint: disable=wrong-import-position

FOREIGN = {
    "router": ("iptables -t mangle -A PREROUTING -s 203.0.113.7/32 -j ACCEPT; "
               "iptables -t nat -A POSTROUTING -s 203.0.113.7/32 -j ACCEPT; "
               "iptables -A INPUT -s 203.0.113.7/32 -j ACCEPT; "
               "ip rule add from 198.51.100.0/24 lookup 200 priority 1000; "
               "ip route add 198.51.100.0/24 dev lo table 200; "
               "ip6tables -t mangle -A PREROUTING -s 2001:db8:7::/48 -j ACCEPT; "
               "ip6tables -A FORWARD -s 2001:db8:7::/48 -j ACCEPT; "
               "ip -6 rule add from 2001:db8:7::/48 lookup 200 priority 1000; "
               "ip -6 route add 2001:db8:7::/48 dev lo table 200; "
               "docker run -d --name foreign --network none tproxy-envoy/node:bookworm sleep infinity >/dev/null"),
}
# Undoes FOREIGN, so that the test that makes it can run again on the same lab.
FOREIGN_UNDO = {
    "router": ("iptables -t mangle -D PREROUTING -s 203.0.113.7/32 -j ACCEPT; "
               "iptables -t nat -D POSTROUTING -s 203.0.113.7/32 -j ACCEPT; "
               "iptables -D INPUT -s 203.0.113.7/32 -j ACCEPT; "
               "ip rule del from 198.51.100.0/24 lookup 200 priority 1000; "
               "ip route del 198.51.100.0/24 dev lo table 200; "
               "ip6tables -t mangle -D PREROUTING -s 2001:db8:7::/48 -j ACCEPT; "
               "ip6tables -D FORWARD -s 2001:db8:7::/48 -j ACCEPT; "
               "ip -6 rule del from 2001:db8:7::/48 lookup 200 priority 1000; "
               "ip -6 route del 2001:db8:7::/48 dev lo table 200; "
               "docker rm -f foreign >/dev/null"),
}
FOREIGN_EVIDENCE = {
    "-A PREROUTING -s 203.0.113.7/32 -j ACCEPT": "iptables-save -t mangle",
    "-A POSTROUTING -s 203.0.113.7/32 -j ACCEPT": "iptables-save -t nat",
    "-A INPUT -s 203.0.113.7/32 -j ACCEPT": "iptables-save -t filter",
    "1000:\tfrom 198.51.100.0/24 lookup 200": "ip rule list",
    "198.51.100.0/24 dev lo scope link": "ip route show table 200",
    "-A PREROUTING -s 2001:db8:7::/48 -j ACCEPT": "ip6tables-save -t mangle",
    "-A FORWARD -s 2001:db8:7::/48 -j ACCEPT": "ip6tables-save -t filter",
    "1000:\tfrom 2001:db8:7::/48 lookup 200": "ip -6 rule list",
    "2001:db8:7::/48 dev lo": "ip -6 route show table 200",
    "foreign": "docker ps --format '{{.Names}}'",
}

BAD_INPUT = [
    ("router_proxy_port", 70000),
    ("router_proxy_port", 0),
    ("router_proxy_port", "not-a-port"),
    ("router_envoy_admin_port", 4999),
    ("router_intercept_ports", []),
    ("router_intercept_ports", [0]),
    ("router_intercept_ports", [80, 80]),
    ("router_intercept_l4_ports", [80]),
    ("router_intercept_l4_ports", [70000]),
    ("router_tproxy_mark", 0),
    ("router_tproxy_mark", 4294967296),
    ("router_route_table", 0),
    ("router_route_table", 253),
    ("router_route_table", 254),
    ("router_route_table", 255),
    ("router_envoy_runtime", "podman"),
    ("router_envoy_log_level", "loud"),
    ("router_envoy_admin_address", "localhost"),
    ("router_envoy_buffer_limit_bytes", 512),
    ("router_intercept_sources", ["198.51.100.1/24"]),  # host bits set
    ("webserver_port", 99999),
    ("client_routes", [{"dest": "not-an-address", "via": ADDR["router"]}]),
    ("router_firewall_backend", "pf"),
    ("router_preserve_client_address_mark", 3),  # shares bit 1 with router_tproxy_mark (with the option on)
    ("webserver_return_routes", [{"dest": "not-an-address", "via": ADDR["router"]}]),
    ("client_routes", [{"dest": ADDR["web"] + "/32", "via": "router"}]),
    ("client_routes", [{"dest": "2001:db8::180/128", "via": ADDR["router"]}]),  # families differ
    ("router_intercept_sources", ["2001:DB8::/64"]),  # not as ip6tables prints it
    ("webserver_bind_address", "2001:db8::180/64"),
]


# --- the lab in the state a test needs ---------------------------------------------------
UNCONFIGURED, CONVERGED, UNKNOWN = "nothing of the collection", "site.yml with the defaults", "unknown"


def traces():
    """What the collection leaves on a lab host, host by host; empty on a lab it never touched."""
    found = {}
    for host in ADDR:
        script = ("ls -d /etc/tproxy-envoy /usr/local/sbin/tproxy-envoy-* /etc/systemd/system/tproxy-envoy-* "
                  "/etc/sysctl.d/*tproxy-envoy* 2>/dev/null; iptables-save | grep -i -e tproxy -e TPROXY-ENVOY; "
                  "ip6tables-save | grep -i -e tproxy -e TPROXY-ENVOY; "
                  "ip rule list | grep fwmark; ip -6 rule list | grep fwmark; ip route show | grep ' via '; "
                  "ip -6 route show | grep ' via '")
        if host in ENGINES:
            script += "; docker ps -a --format '{{.Names}}' | grep '^tproxy-'"
        out = sh(host, script, check=False).stdout.strip()
        if out:
            found[host] = out
    return found


def recreate_lab():
    subprocess.run([str(ROOT / "tools/lab/lab.sh"), "down"], check=True, timeout=300)
    subprocess.run([str(ROOT / "tools/lab/lab.sh"), "up"], check=True, timeout=900)


class LabState:
    """What this file's tests last left on the lab; UNKNOWN after a failure or when another file ran."""

    def __init__(self):
        self.now = UNKNOWN
        self.after = None

    def establish(self, wanted, never_configured=False):
        self.after = None
        if wanted == UNCONFIGURED and (never_configured or self.now != UNCONFIGURED):
            if traces():
                if never_configured:
                    recreate_lab()
                else:
                    assert_ok(playbook("teardown"))
            assert traces() == {}, "the lab still carries the collection after teardown"
        elif wanted == CONVERGED and self.now != CONVERGED:
            assert_ok(playbook("site"))
        self.now = UNKNOWN  # until the test has passed

    def leaves(self, state):
        """Called by a test that ends in another state than the one it asked for."""
        self.after = state


@pytest.fixture(scope="module")
def lab_state(lab):  # the lab is up before its state is tracked
    return LabState()


def _hold(request, lab_state, wanted, never_configured=False):
    lab_state.establish(wanted, never_configured)
    failed_before = request.session.testsfailed
    yield lab_state
    passed = request.session.testsfailed == failed_before
    lab_state.now = (lab_state.after or wanted) if passed else UNKNOWN


@pytest.fixture
def never_configured_lab(request, lab_state):
    """No trace of the collection on any host; the lab is made anew if it had some."""
    yield from _hold(request, lab_state, UNCONFIGURED, never_configured=True)


@pytest.fixture
def unconfigured_lab(request, lab_state):
    """No trace of the collection on any host (teardown.yml if there was)."""
    yield from _hold(request, lab_state, UNCONFIGURED)


@pytest.fixture
def converged_lab(request, lab_state):
    """site.yml applied with the defaults."""
    yield from _hold(request, lab_state, CONVERGED)


# --- the tests ---------------------------------------------------------------------------------
def test_teardown_on_a_never_configured_lab_is_ok(never_configured_lab):
    assert_ok(playbook("teardown"), changed=0)


# What a bad value needs beside it to be in use.
BAD_INPUT_WITH = {"router_preserve_client_address_mark": {"router_preserve_client_address": True}}


@pytest.mark.parametrize("name,value", BAD_INPUT, ids=["%s=%s" % case for case in BAD_INPUT])
def test_bad_input_is_refused_naming_the_variable_before_any_change(unconfigured_lab, name, value):
    before = snapshot()
    proc = playbook("site", "-e", json.dumps({name: value, **BAD_INPUT_WITH.get(name, {})}))
    assert proc.returncode != 0
    assert name in proc.stdout, proc.stdout[-3000:]
    assert snapshot() == before


def test_a_kernel_without_tproxy_stops_the_router_before_any_change(unconfigured_lab, tmp_path_factory):
    # A fake kernel tree (the module's `root` option): no module support, TPROXY and socket not set.
    # Under /var/tmp, which the lab hosts share with this machine.
    root = tmp_path_factory.mktemp("kernel", numbered=True)
    fake = pathlib.Path("/var/tmp") / root.name
    fake.mkdir()
    try:
        (fake / "proc/sys/kernel").mkdir(parents=True)
        (fake / "proc/sys/kernel/osrelease").write_text("6.1.0-notproxy\n")
        (fake / "boot").mkdir()
        (fake / "boot/config-6.1.0-notproxy").write_text(
            "# CONFIG_MODULES is not set\n# CONFIG_NETFILTER_XT_TARGET_TPROXY is not set\n"
            "# CONFIG_NETFILTER_XT_MATCH_SOCKET is not set\n# CONFIG_NF_TPROXY_IPV4 is not set\n"
            "# CONFIG_NF_SOCKET_IPV4 is not set\n")
        before = snapshot()
        proc = playbook("site", "-e", "router_kernel_root=%s" % fake)
        assert proc.returncode != 0
        for piece in ("xt_TPROXY", "xt_socket", "CONFIG_NETFILTER_XT_TARGET_TPROXY"):
            assert piece in proc.stdout, (piece, proc.stdout[-3000:])
        assert snapshot() == before
    finally:
        shutil.rmtree(fake)


def test_a_taken_proxy_port_stops_the_router_before_any_change(unconfigured_lab):
    squatter = subprocess.Popen(["nsenter", "-t", holder("router"), "-m", "-n", "--", "python3", "-m", "http.server",
                                 "--bind", "127.0.0.1", "4999"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening():
            return bool(sh("router", "ss -Hltn 'sport = :4999'").stdout.strip())

        assert wait_until(listening, 10, 0.2)
        before = snapshot()
        proc = playbook("site")
        assert proc.returncode != 0
        assert "router_proxy_port 4999" in proc.stdout and "already taken" in proc.stdout, proc.stdout[-3000:]
        assert snapshot() == before
    finally:
        squatter.send_signal(signal.SIGTERM)
        squatter.wait(timeout=10)


@pytest.mark.parametrize("setup,undo,variable", [
    ("ip rule add fwmark 0x1/0x1 lookup 200 priority 900", "ip rule del fwmark 0x1/0x1 lookup 200 priority 900",
     "router_tproxy_mark"),
    ("ip route add 203.0.113.0/24 dev lo table 100", "ip route del 203.0.113.0/24 dev lo table 100",
     "router_route_table"),
    ("iptables -t mangle -A OUTPUT -j MARK --set-xmark 0x1/0x1", "iptables -t mangle -D OUTPUT -j MARK --set-xmark 0x1/0x1",
     "router_tproxy_mark"),
    ("ip -6 rule add fwmark 0x1/0x1 lookup 200 priority 900", "ip -6 rule del fwmark 0x1/0x1 lookup 200 priority 900",
     "router_tproxy_mark"),
    ("ip -6 route add 2001:db8:7::/48 dev lo table 100", "ip -6 route del 2001:db8:7::/48 dev lo table 100",
     "router_route_table"),
    ("ip6tables -t mangle -A OUTPUT -j MARK --set-xmark 0x1/0x1",
     "ip6tables -t mangle -D OUTPUT -j MARK --set-xmark 0x1/0x1", "router_tproxy_mark"),
], ids=["ip-rule-on-our-mark", "route-in-our-table", "iptables-mark", "ipv6-rule-on-our-mark", "ipv6-route-in-our-table",
        "ip6tables-mark"])
def test_a_mark_or_table_used_by_others_stops_the_router_before_any_change(unconfigured_lab, setup, undo, variable):
    sh("router", setup)
    try:
        before = snapshot()
        proc = playbook("site")
        assert proc.returncode != 0
        assert variable in proc.stdout and ("already uses" in proc.stdout or "already holds" in proc.stdout), \
            proc.stdout[-3000:]
        assert snapshot() == before
    finally:
        sh("router", undo)


def test_site_converges_and_is_idempotent_and_check_mode_agrees(unconfigured_lab):
    assert_ok(playbook("site"))
    assert_ok(playbook("site"), changed=0)
    assert_ok(playbook("site", "--check"), changed=0)
    assert_ok(playbook("verify"), changed=0)
    unconfigured_lab.leaves(CONVERGED)


def test_rules_live_in_own_commented_chains_with_masked_marks(converged_lab):
    mangle = sh("router", "iptables-save -t mangle").stdout.splitlines()
    own = [line for line in mangle if line.startswith("-A TPROXY-ENVOY")]
    assert own and all('-m comment --comment "tproxy.envoy' in line for line in own), own
    jumps = [line for line in mangle if line.startswith("-A PREROUTING") and "TPROXY-ENVOY" in line]
    assert jumps == ['-A PREROUTING -m comment --comment "tproxy.envoy" -j TPROXY-ENVOY']
    marks = re.findall(r"--(?:tproxy-mark|set-xmark) (\S+)", "\n".join(own))
    assert marks and all(m == "0x1/0x1" for m in marks), marks
    assert mangle.index(jumps[0]) == min(i for i, line in enumerate(mangle) if line.startswith("-A PREROUTING"))
    # The FORWARD jump is the chain's last rule: after Docker's and any operator's (next tests).
    forward = forward_rules()
    assert [line for line in forward if "TPROXY-ENVOY-FWD" in line] == [FORWARD_JUMP]
    assert forward[-1] == FORWARD_JUMP and len(forward) > 1, forward


def test_a_rule_set_the_kernel_rejects_leaves_the_old_one_whole(converged_lab):
    # A rules file whose last table cannot be loaded (a bad rule after good ones): apply must
    # fail and leave every own chain exactly as it was, never half replaced.
    before = sh("router", "iptables-save | grep -E '^-A (PREROUTING|FORWARD|TPROXY-ENVOY)'").stdout
    rules = state_paths("router")["rules"]
    sh("router", "cp %s %s.good && sed -i 's/^-A TPROXY-ENVOY-FWD \\(.*\\)-j ACCEPT$/-A TPROXY-ENVOY-FWD \\1-j NO-SUCH-TARGET/' %s"
       % (rules, rules, rules))
    try:
        sh("router", "sed -i 's/tproxy-mark 0x1\\/0x1/tproxy-mark 0x3\\/0x3/' %s" % rules)  # a change in mangle too
        failed = sh("router", state_paths("router")["script"] + " apply", check=False)
        assert failed.returncode != 0
        assert sh("router", "iptables-save | grep -E '^-A (PREROUTING|FORWARD|TPROXY-ENVOY)'").stdout == before
    finally:
        sh("router", "mv %s.good %s" % (rules, rules))
    assert sh("router", state_paths("router")["script"] + " check", check=False).returncode == 0


# --- forwarded traffic: the clients' ACCEPT comes after every foreign rule -----------------------
FORWARD_JUMP = '-A FORWARD -m comment --comment "tproxy.envoy" -j TPROXY-ENVOY-FWD'
# An operator's rule that drops some forwarded client traffic: TCP to one port of the web host that
# is not intercepted. Nothing listens on the web host's ports 8081 and 8082: a SYN that is forwarded
# is refused there (curl's 7), one dropped on the router times out (curl's 28).
DROPPED, PASSED = 8081, 8082
OPERATOR_DROP = "-s %s/32 -d %s/32 -p tcp -m tcp --dport %d -m comment --comment operator -j DROP" % (
    ADDR["client"], ADDR["web"], DROPPED)


def forward_rules():
    return [line for line in sh("router", "iptables -S FORWARD").stdout.splitlines() if line.startswith("-A ")]


def connect(port):
    """curl's exit status for a connection from the client to the web host's PORT (7 or 28 above)."""
    return sh("client", "curl -sS -o /dev/null --connect-timeout 3 http://%s:%d/" % (ADDR["web"], port),
              check=False).returncode


@pytest.fixture
def operator_rule():
    """add(CHAIN, position...) puts OPERATOR_DROP into the router's CHAIN; removed after the test."""
    added = []

    def add(chain, *position):
        sh("router", "iptables -I %s %s %s" % (chain, " ".join(position), OPERATOR_DROP))
        added.append(chain)

    yield add
    for chain in added:
        sh("router", "while iptables -D %s %s 2>/dev/null; do :; done" % (chain, OPERATOR_DROP), check=False)


def test_a_foreign_rule_that_drops_forwarded_client_traffic_still_drops_it(converged_lab, operator_rule):
    assert "-P FORWARD DROP" in sh("router", "iptables -S FORWARD").stdout, "test setup: Docker's policy"
    assert (connect(DROPPED), connect(PASSED)) == (7, 7)  # forwarded under the DROP policy
    operator_rule("DOCKER-USER")  # where Docker tells operators to put their rules
    assert (connect(DROPPED), connect(PASSED)) == (28, 7)
    assert served_by_envoy("http://%s/get" % ADDR["web"])  # intercepted traffic does not cross FORWARD
    assert_ok(playbook("site"), changed=0)
    assert (connect(DROPPED), connect(PASSED)) == (28, 7)
    assert forward_rules()[-1] == FORWARD_JUMP


def test_an_earlier_versions_forward_jump_at_the_top_moves_behind_foreign_rules_once(converged_lab, operator_rule):
    # Earlier versions inserted the jump first in FORWARD: it accepted the clients' traffic ahead
    # of DOCKER-USER and of every operator rule. A run of this version moves it to the end, once.
    jump = FORWARD_JUMP.replace("-A FORWARD ", "", 1).replace('"', "")
    sh("router", "iptables -D FORWARD %s && iptables -I FORWARD %s" % (jump, jump))
    operator_rule("FORWARD", "2")  # right behind the old jump, ahead of Docker's chains
    assert forward_rules()[:2] == [FORWARD_JUMP, "-A FORWARD " + OPERATOR_DROP]  # a plain comment is not quoted
    assert connect(DROPPED) == 7  # what the issue reports: the operator's DROP is overridden
    checked = assert_ok(playbook("site", "--check"))
    assert checked["router"]["changed"] > 0, checked
    assert connect(DROPPED) == 7  # check mode changed nothing
    assert assert_ok(playbook("site"))["router"]["changed"] > 0
    forward = forward_rules()
    assert forward[-1] == FORWARD_JUMP and forward.count(FORWARD_JUMP) == 1, forward
    assert (connect(DROPPED), connect(PASSED)) == (28, 7)
    assert served_by_envoy("http://%s/get" % ADDR["web"])
    assert_ok(playbook("site"), changed=0)
    assert_ok(playbook("verify"), changed=0)
    assert connect(DROPPED) == 28


def served_by_envoy(url):
    """A 200 for the client, counted by Envoy's L7 listener for port 80 (its counters start at 0
    in a new Envoy, and read 0 while none answers)."""
    before = envoy_stat("http.tproxy_80.downstream_rq_total")
    result = client_get(url, 3)
    return " 200 " in result.stdout.partition("\n")[0] and envoy_stat("http.tproxy_80.downstream_rq_total") > before


def test_connections_to_the_router_itself_are_never_handed_to_envoy(converged_lab):
    before = envoy_stat("cluster.original_destination.upstream_cx_total")
    for port in (4999, 80, 19000):
        result = client_get("http://%s:%d/" % (ADDR["router"], port), timeout=5)
        assert result.returncode == 7, (port, result.returncode, result.stderr)  # refused, at once
    assert envoy_stat("cluster.original_destination.upstream_cx_total") == before
    ok = client_get("http://%s/get" % ADDR["web"])
    assert ok.returncode == 0 and " 200 " in ok.stdout.partition("\n")[0], ok.stdout[:300] + ok.stderr
    # Exactly one upstream connection for that request: Envoy's own SYN was not intercepted again.
    assert envoy_stat("cluster.original_destination.upstream_cx_total") == before + 1


def test_changing_mark_and_table_replaces_the_rules_without_a_gap(converged_lab):
    failures, done = [], threading.Event()

    def load():
        for _attempt in range(2000):  # bounded: at most ~2000 requests, and stops when the change is done
            if done.is_set():
                return
            result = client_get("http://%s/get" % ADDR["web"], timeout=5)
            if result.returncode != 0 or "200 OK" not in result.stdout:
                failures.append(result.stderr or result.stdout[:200])
            time.sleep(0.05)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        assert_ok(playbook("site", "-e", "router_tproxy_mark=2", "-e", "router_route_table=101"))
    finally:
        done.set()
        worker.join(timeout=60)
    assert failures == []
    state = sh("router", "ip rule list; ip route show table 100; iptables-save -t mangle").stdout
    assert "0x1/0x1" not in state and "lookup 100" not in state and "fwmark 0x2/0x2 lookup 101" in state
    assert_ok(playbook("site"))
    assert_ok(playbook("verify"))


def test_l4_ports_go_through_envoy_unchanged_and_back_to_l7(converged_lab):
    l4 = json.dumps({"router_intercept_ports": [], "router_intercept_l4_ports": [80]})
    assert_ok(playbook("site", "-e", l4))
    assert_ok(playbook("site", "-e", l4), changed=0)
    before = envoy_stat("tcp.tproxy_l4_80.downstream_cx_total")
    # The L7 chain's counters outlive it (the change reaches Envoy without a restart): compare.
    http_before = envoy_stat("http.tproxy_80.downstream_rq_total")
    result = client_get("http://%s/get" % ADDR["web"])
    assert result.returncode == 0 and "200 OK" in result.stdout, result.stderr
    _head, body = result.stdout.split("\n\n", 1)  # text mode: CRLF read as LF
    assert '"origin": "%s"' % ADDR["router"] in body  # httpbin's peer is Envoy, on the router ...
    assert envoy_stat("tcp.tproxy_l4_80.downstream_cx_total") == before + 1  # ... at L4
    assert envoy_stat("http.tproxy_80.downstream_rq_total") == http_before  # no HTTP handling (no L7 chain)
    assert_ok(playbook("site"))
    assert_ok(playbook("verify"))


def test_a_killed_envoy_comes_back_and_serves_again(converged_lab):
    pid = docker_json("router", "inspect", "tproxy-envoy")[0]["State"]["Pid"]
    subprocess.run(["kill", "-KILL", str(pid)], check=True)
    assert wait_until(lambda: served_by_envoy("http://%s/get" % ADDR["web"]), 60)
    assert docker_json("router", "inspect", "tproxy-envoy")[0]["State"]["Pid"] != pid
    assert_ok(playbook("verify"))


def test_after_a_reboot_interception_and_routes_come_back(converged_lab):
    units = {}
    for host in ("router", "client"):
        unit = sh(host, "cat /etc/systemd/system/" + state_paths(host)["unit"]).stdout
        units[host] = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(("ExecStartPre=", "ExecStart="))]
        subprocess.run([str(ROOT / "tools" / "lab" / "lab.sh"), "reboot", host], check=True, timeout=300)
    assert "TPROXY" not in sh("router", "iptables-save -t mangle").stdout  # the reboot really lost the rules
    for host, commands in units.items():
        if host == "router":
            sh(host, "sysctl -q -p /etc/sysctl.d/60-tproxy-envoy.conf")  # what systemd-sysctl does at boot
        for command in commands:
            sh(host, command, timeout=120)
    assert_ok(playbook("verify"))


def test_boot_units_pass_systemd_analyze(converged_lab, tmp_path):
    for host in ("router", "client"):
        unit = tmp_path / state_paths(host)["unit"]
        unit.write_text(sh(host, "cat /etc/systemd/system/%s" % unit.name).stdout)
        script = sh(host, "cat " + state_paths(host)["script"]).stdout
        fake = tmp_path / "tproxy-envoy-script"
        fake.write_text(script)
        fake.chmod(0o755)
        unit.write_text(unit.read_text().replace(state_paths(host)["script"], str(fake)))
        proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                              check=False)
        problems = [line for line in proc.stderr.splitlines() if unit.name in line]
        assert proc.returncode == 0 and not problems, proc.stderr


def test_an_interrupted_site_run_converges_on_the_next_run(converged_lab):
    assert_ok(playbook("teardown"))
    env_proc = playbook_process("site")
    interrupted = False
    try:
        for line in env_proc.stdout:
            if "Ensure the Envoy container runs" in line:
                env_proc.send_signal(signal.SIGINT)
                interrupted = True
                break
        # Read on to the end (a playbook that writes into a pipe nobody reads blocks and never exits),
        # for a bounded time: a deadlocked one never closes its output.
        env_proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        # ansible-core 2.19 can deadlock on SIGINT (its main thread waits on a lock the interrupted
        # code held, a worker gone, the results thread still reading its queue; seen twice here):
        # end it as an operator would, the whole process group. The run is interrupted either way.
        os.killpg(env_proc.pid, signal.SIGKILL)
        env_proc.wait(timeout=60)
    finally:
        if env_proc.poll() is None:
            os.killpg(env_proc.pid, signal.SIGKILL)
            env_proc.wait(timeout=60)
    assert interrupted
    assert env_proc.returncode != 0
    assert_ok(playbook("site"))
    assert_ok(playbook("site"), changed=0)
    assert_ok(playbook("verify"))


@pytest.fixture
def foreign_state_undone():
    """FOREIGN is removed after the test that made it, so that it can run again on the same lab."""
    yield
    for host, script in FOREIGN_UNDO.items():
        sh(host, script, check=False)


def test_teardown_spares_other_peoples_state_and_is_idempotent(converged_lab, foreign_state_undone):
    # Others' rules, policy rule, route and container exist before site.yml and after teardown.yml.
    converged_lab.leaves(UNCONFIGURED)
    assert_ok(playbook("teardown"))
    for host, script in FOREIGN.items():
        sh(host, script)
    assert_ok(playbook("site"))
    assert_ok(playbook("verify"))
    assert_ok(playbook("teardown"))
    for evidence, command in FOREIGN_EVIDENCE.items():
        assert evidence in sh("router", command).stdout, (evidence, command)
    for family in ("", "6"):
        assert "TPROXY" not in sh("router", "ip%stables-save" % family).stdout
        assert "lookup 100" not in sh("router", "ip -%s rule list" % (family or "4")).stdout
        assert sh("router", "ip -%s route show table 100" % (family or "4")).stdout.strip() == ""
    for host in ("router", "client"):
        paths = state_paths(host)
        assert sh(host, "ls %s %s /etc/systemd/system/%s" % (os.path.dirname(paths["rules"]), paths["script"], paths["unit"]),
                  check=False).stdout == ""
    assert "tproxy-envoy" not in sh("router", "docker ps -a --format '{{.Names}}'").stdout
    assert "tproxy-httpbin" not in sh("web", "docker ps -a --format '{{.Names}}'").stdout
    assert_ok(playbook("teardown"), changed=0)
    verify = playbook("verify")
    assert verify.returncode != 0 and "Hop 'web server' failed" in verify.stdout


def test_recap_parser_reads_failures():
    fake = subprocess.CompletedProcess([], 2, "router : ok=3 changed=1 unreachable=0 failed=1 skipped=0\n", "")
    assert recap(fake) == {"router": {"ok": 3, "changed": 1, "unreachable": 0, "failed": 1, "skipped": 0}}
