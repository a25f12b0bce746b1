"""The router fleet (keepalived, VRRP v3) on a lab of its own, inventories/lab-fleet: two routers,
active/active (group a on fl-router1, group b on fl-router2), dual stack, one router on each firewall
backend, two clients each routed through one group's addresses.

For each fault on the router holding group a, clients load the fleet (short connections and a few
long ones, tests/topology/fleet/probe.py) and the test measures: the time until the first new
connection succeeds, the new connections that failed, the long connections lost on the failed router
and on the survivor (must be 0), and what happens when the failed router comes back. The table is
printed (pytest -s) and written to $TMPDIR/tproxy-fleet-faults.md.

The lab is apart from the main one (its own lab_dir, namespaces and LAN), brought up once for the
whole module, with one converge (site.yml), and removed here; every fault is measured in that lab. Its
cost in `make test` is about what the lab, one converge and the faults take (printed as
`fleet phases` with -s).
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "lab"))
import conftest  # noqa: E402  pylint: disable=wrong-import-position
import inventory  # noqa: E402  pylint: disable=wrong-import-position

LAB_INVENTORY = ROOT / "inventories" / "lab-fleet"
LAB = inventory.load(LAB_INVENTORY)
ADDR, ADDR6 = LAB.addresses, LAB.addresses6
R1, R2, C1, C2, WEB = "fl-router1", "fl-router2", "fl-client", "fl-client2", "fl-web"
ROUTERS = (R1, R2)
VIP = {"a": ("203.0.113.1", "2001:db8:f::1"), "b": ("203.0.113.2", "2001:db8:f::2")}
CTL = "/usr/local/sbin/tproxy-envoy-keepalived"
PROBE = ROOT / "tests" / "topology" / "fleet" / "probe.py"
ENV = dict(os.environ, LAB_INVENTORY=str(LAB_INVENTORY), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
           ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
ROWS = []
PHASES = {}


def holder(host):
    return conftest.holder(host, LAB)


def sh(host, script, check=True, timeout=60):
    return conftest.sh(host, script, check, timeout, LAB)


def lab_sh(action):
    subprocess.run([str(ROOT / "tools" / "lab" / "lab.sh"), action], env=ENV, check=True, timeout=900)


def playbook(name, *args):
    return subprocess.run(["ansible-playbook", "-i", str(LAB_INVENTORY), "playbooks/%s.yml" % name, *args], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=1200, check=False)


recap, assert_ok = conftest.recap, conftest.assert_ok


def holds(host, address):
    """Whether the router has the address (read with `ip -n`: no process enters the host)."""
    proc = subprocess.run(["ip", "-n", LAB.hosts[host].netns, "-o", "addr", "show", "to", address], capture_output=True,
                          text=True, timeout=30, check=True)
    return bool(proc.stdout.strip())


def holder_of(group):
    """The routers that hold the group's IPv4 address (one, when all is well)."""
    return [router for router in ROUTERS if holds(router, VIP[group][0])]


def wait_for(what, predicate, timeout=30, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))


def serving(router):
    return sh(router, CTL + " check", check=False).returncode == 0


def balanced():
    return holder_of("a") == [R1] and holder_of("b") == [R2]


def balance():
    """Group a on fl-router1, b on fl-router2, both routers able to serve. A router that comes back does not
    take its address back (no preemption), so a group held by the wrong router is drained there (the planned
    way to move a group) until the right one holds it."""
    for router in ROUTERS:
        wait_for("%s to serve" % router, lambda r=router: serving(r), timeout=60)
    for group, wanted in (("a", R1), ("b", R2)):
        other = R2 if wanted == R1 else R1
        if holder_of(group) != [wanted]:
            sh(other, "%s drain %s" % (CTL, group))
            try:
                wait_for("%s to hold group %s" % (wanted, group), lambda g=group, w=wanted: holder_of(g) == [w], timeout=15)
            finally:
                sh(other, "%s undrain %s" % (CTL, group))
    assert balanced(), (holder_of("a"), holder_of("b"))
    # The clients start from a fresh neighbour entry, as after a while without traffic: a gratuitous ARP that
    # moved a group just now may have come within the client's locktime and been ignored.
    for client in (C1, C2):
        sh(client, "for a in %s; do ip neigh del $a dev eth0 2>/dev/null; done; true" % " ".join(VIP["a"] + VIP["b"]))


class Probe:
    """probe.py in a client, in the background; .result() waits and parses its JSON."""

    def __init__(self, client, target, duration, interval=0.05, long=4):
        # A higher scheduling priority than the lab's daemons: the load generator's own delays are not the fleet's.
        # The client's network only: the script is read from this checkout (a checkout under /tmp is not in
        # the client's own /tmp).
        argv = ["nice", "-n", "-10", "nsenter", "-t", holder(client), "-n", "--", sys.executable, str(PROBE),
                "--target", target, "--duration", str(duration), "--interval", str(interval), "--long", str(long)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self):
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        return json.loads(out)


def _pids_in_netns(router):
    inode = os.stat("/proc/%s/ns/net" % holder(router)).st_ino
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat("/proc/%s/ns/net" % entry).st_ino == inode:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _signal_netns(router, signal):
    pids = _pids_in_netns(router)
    subprocess.run(["kill", "-" + signal] + [str(pid) for pid in pids], check=False)


def _link_up(router):
    sh(router, "ip link set eth0 up && ip -6 addr replace %s/%d dev eth0 nodad" % (ADDR6[router], LAB.ipv6_prefix_length))


def _envoy_ready(router):
    return sh(router, "curl -fsS -o /dev/null --max-time 1 http://127.0.0.1:19000/ready", check=False).returncode == 0


# fault: (inject, repair); each run on the router that holds group a.
FAULTS = {
    # The process, as a crash would end it: Docker's restart policy applies (it does not after `docker kill`).
    "Envoy killed (SIGKILL; Docker restarts it)": (lambda r: sh(r, "kill -KILL $(docker inspect -f '{{.State.Pid}}' tproxy-envoy)"),
                                                   lambda r: wait_for("Envoy back", lambda: _envoy_ready(r), 60)),
    "Envoy's container stopped": (lambda r: sh(r, "docker stop tproxy-envoy"),
                                  lambda r: sh(r, "docker start tproxy-envoy")),
    "router's link down": (lambda r: sh(r, "ip link set eth0 down"), _link_up),
    "router's namespace frozen (SIGSTOP of all its processes)": (lambda r: _signal_netns(r, "STOP"),
                                                                 lambda r: _signal_netns(r, "CONT")),
    "keepalived stopped (SIGTERM)": (lambda r: sh(r, CTL + " stop"), lambda r: sh(r, CTL + " start")),
    "planned drain": (lambda r: sh(r, CTL + " drain"), lambda r: sh(r, CTL + " undrain")),
}


def _window(shorts, t0, until):
    return [s for s in shorts if t0 <= s[0] < until]


def measure(shorts, t0, repaired):
    """From the short connections: time to the first success after the fault, the first that succeeded
    at once (under 1 s: no SYN retry), and the failures from the fault until the repair."""
    after = _window(shorts, t0, repaired)
    ok_ends = [s[1] for s in after if s[2]]
    prompt = [s[0] for s in after if s[2] and s[1] - s[0] < 1.0]
    failed = [s for s in after if not s[2]]
    return {"first_ok": (min(ok_ends) - t0) if ok_ends else None,
            "prompt": (min(prompt) - t0) if prompt else None,
            "failed": len(failed), "attempts": len(after), "slow": sum(1 for s in after if s[2] and s[1] - s[0] >= 1.0),
            "errors": sorted({s[3] for s in failed})}


def lost(longs, before=None):
    return sum(1 for record in longs if record["lost"] is not None and (before is None or record["lost"] < before))


def _timed(name, action):
    started = time.monotonic()
    try:
        return action()
    finally:
        PHASES[name] = round(time.monotonic() - started, 1)


@pytest.fixture(scope="module")
def fleet():
    """A fresh fleet lab with the collection applied once; removed at the end."""
    lab_sh("down")
    state = {"torn_down": False}
    try:
        _timed("lab up", lambda: lab_sh("up"))
        _timed("site", lambda: assert_ok(playbook("site")))
        yield state
    finally:
        # Also after a failed bring-up: nothing of the fleet lab is left behind.
        if not state["torn_down"]:
            playbook("teardown")
        _timed("lab down", lambda: lab_sh("down"))
        print("\nfleet phases (s): %s" % json.dumps(PHASES))


def test_verify_names_each_groups_holder_and_checks_the_standby(fleet):
    proc = _timed("verify", lambda: playbook("verify"))
    assert_ok(proc)
    # Without preemption the first router whose keepalived runs takes a group, whatever its priority: verify
    # names the one that holds it (and fails unless exactly one does).
    for group in ("a", "b"):
        holders = re.findall(r"router_group %s: %s, %s held by ([\w-]+)" % ((group,) + VIP[group]), proc.stdout)
        assert holders and set(holders) == set(holder_of(group)), (holders, holder_of(group), proc.stdout[-3000:])
    # The standby's side of each group: its health check (Envoy ready, rules in place) passes.
    assert serving(R1) and serving(R2)


BAD_FLEETS = [
    # The topology model, at validate (no host touched).
    ([{"name": "a", "virtual_address": "203.0.113.3", "virtual_address6": "2001:db8:f::3", "vrrp_id": 53},
      {"name": "b", "virtual_address": "203.0.113.4", "virtual_address6": "2001:db8:f::4", "vrrp_id": 53}],
     "router groups a and b both have the VRRP id 53 (router_vrrp_id)"),
    # The host probe, at preflight (before any change).
    ([{"name": "a", "virtual_address": "198.51.100.1", "virtual_address6": "2001:db8:f::3", "vrrp_id": 51},
      {"name": "b", "virtual_address": "203.0.113.2", "virtual_address6": "2001:db8:f::2", "vrrp_id": 52}],
     "virtual address 198.51.100.1 must lie in the network of the router's own address"),
]


@pytest.mark.parametrize("groups, words", BAD_FLEETS, ids=["duplicate-vrrp-id", "outside-the-network"])
def test_bad_fleet_input_stops_before_any_change(fleet, groups, words):
    before = (holder_of("a"), holder_of("b"))
    proc = playbook("site", "-e", json.dumps({"router_groups": groups}))
    assert proc.returncode != 0
    assert words in proc.stdout, proc.stdout[-3000:]
    assert recap(proc) and all(c["changed"] == 0 for c in recap(proc).values()), recap(proc)
    assert (holder_of("a"), holder_of("b")) == before


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_on_the_holder(fleet, fault):
    inject, repair = FAULTS[fault]
    balance()
    failed_router, survivor = R1, R2
    started = time.monotonic()
    probes = {"v4": Probe(C1, ADDR[WEB], 11), "v6": Probe(C1, ADDR6[WEB], 11, interval=0.1, long=2),
              "survivor": Probe(C2, ADDR[WEB], 11, interval=0.5, long=4),
              "survivor6": Probe(C2, ADDR6[WEB], 11, interval=0.5, long=2)}
    time.sleep(2)
    t0 = time.time()
    inject(failed_router)
    try:
        wait_for("%s to hold group a" % survivor, lambda: holds(survivor, VIP["a"][0]), timeout=10, step=0.1)
        moved = time.time() - t0
    except AssertionError:
        moved = None  # the failed router recovered before its health check noticed
    time.sleep(2)
    # Long connections opened through the survivor after the takeover: does the failed router's return cut them?
    after = Probe(C1, ADDR[WEB], 6, interval=0.1, long=4)
    time.sleep(1.5)
    repaired = time.time()
    repair(failed_router)
    results = {name: probe.result() for name, probe in probes.items()}
    failback = after.result()
    v4, v6 = measure(results["v4"]["short"], t0, repaired), measure(results["v6"]["short"], t0, repaired)
    back = _window(results["v4"]["short"], repaired, repaired + 60) + _window(failback["short"], repaired, repaired + 60)
    wait_for("%s to serve again" % failed_router, lambda: serving(failed_router), timeout=60)
    row = {"fault": fault, "moved": moved, "v4": v4, "v6": v6,
           "lost_failed": lost(results["v4"]["long"]) + lost(results["v6"]["long"]),
           "long_failed": len(results["v4"]["long"]) + len(results["v6"]["long"]),
           "lost_survivor": lost(results["survivor"]["long"]) + lost(results["survivor6"]["long"]),
           "long_survivor": len(results["survivor"]["long"]) + len(results["survivor6"]["long"]),
           "failback_failed": sum(1 for s in back if not s[2]),
           "failback_lost": lost(failback["long"]), "failback_long": len(failback["long"]),
           "holder_after": holder_of("a")}
    PHASES["fault: " + fault] = round(time.monotonic() - started, 1)
    ROWS.append(row)
    print("\n" + json.dumps(row))
    # The survivor takes over; new connections through the fleet succeed; nothing it carried is lost.
    assert v4["first_ok"] is not None and v6["first_ok"] is not None, row
    assert row["lost_survivor"] == 0, row
    assert all(not record["lost"] for result in (results["survivor"], results["survivor6"]) for record in result["long"]), row
    # The failed router's failure mode stays closed: its rules stay while Envoy does not serve.
    assert sh(failed_router, "/usr/local/sbin/tproxy-envoy-router check", check=False).returncode == 0


def _cell(value, unit=" s"):
    return "–" if value is None else "%.2f%s" % (value, unit)


def test_write_the_fault_table(fleet):
    if not ROWS:
        pytest.skip("no fault ran")
    lines = ["| fault | address moved after | first new connection OK after (IPv4 / IPv6) | new connections "
             "failed (IPv4 / IPv6, of attempts) | slow (SYN retry) | long connections lost on the failed router | "
             "lost on the survivor | when the failed router is back |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in ROWS:
        back = "%s holds a; %d failed new connections, %d of %d long connections lost" % (
            ", ".join(row["holder_after"]) or "nobody", row["failback_failed"], row["failback_lost"], row["failback_long"])
        lines.append("| %s | %s | %s / %s | %d of %d / %d of %d | %d / %d | %d of %d | %d of %d | %s |" % (
            row["fault"], _cell(row["moved"]), _cell(row["v4"]["first_ok"]), _cell(row["v6"]["first_ok"]),
            row["v4"]["failed"], row["v4"]["attempts"], row["v6"]["failed"], row["v6"]["attempts"],
            row["v4"]["slow"], row["v6"]["slow"], row["lost_failed"], row["long_failed"], row["lost_survivor"],
            row["long_survivor"], back))
    table = "\n".join(lines) + "\n"
    pathlib.Path(tempfile.gettempdir(), "tproxy-fleet-faults.md").write_text(table)
    print("\n" + table)


def test_teardown_removes_the_fleet_and_leaves_another_vrrp_instance_alone(fleet):
    foreign = "/tmp/foreign-keepalived"
    sh(R2, "mkdir -p %s && printf '%%s\\n' 'vrrp_instance foreign {' '    state BACKUP' '    interface eth0' "
           "'    virtual_router_id 77' '    priority 100' '    advert_int 1' '    virtual_ipaddress {' "
           "'        203.0.113.77/32 dev eth0' '    }' '}' > %s/keepalived.conf && "
           "keepalived --vrrp -f %s/keepalived.conf -p %s/k.pid -r %s/v.pid" % ((foreign,) * 5))
    try:
        wait_for("the foreign instance to hold its address", lambda: holds(R2, "203.0.113.77"), timeout=20)
        assert_ok(_timed("teardown", lambda: playbook("teardown")))
        fleet["torn_down"] = True
        for router in ROUTERS:
            for address in VIP["a"] + VIP["b"]:
                assert not holds(router, address), (router, address)
            assert sh(router, "test ! -e %s && test ! -e /etc/tproxy-envoy/keepalived" % CTL, check=False).returncode == 0
        assert holds(R2, "203.0.113.77")
        assert sh(R2, "kill -0 $(cat %s/k.pid)" % foreign, check=False).returncode == 0
    finally:
        sh(R2, "kill $(cat %s/k.pid) 2>/dev/null; sleep 1; rm -rf %s" % (foreign, foreign), check=False)
