"""The namespace lab as a test fixture: hosts, playbook runs and snapshots of host state.

These tests need root and bring the lab up themselves (tools/lab/lab.sh up); they leave it down.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The lab's layout has one home, the lab inventory; tools/lab/inventory.py reads it.
sys.path.insert(0, str(ROOT / "tools" / "lab"))
import inventory  # noqa: E402  pylint: disable=wrong-import-position

# LAB_INVENTORY (as for tools/lab/lab.sh, which the lab fixture runs with this environment): the tests on
# another lab of the same layout, beside the main one (its own lab_dir and namespace names).
LAB_INVENTORY = os.environ.get("LAB_INVENTORY") or str(inventory.INVENTORY_DIR)
LAB = inventory.load(pathlib.Path(LAB_INVENTORY))
ADDR = LAB.addresses
ADDR6 = LAB.addresses6  # empty in an IPv4-only lab
ENGINES = LAB.engine_hosts


def holder(host, lab=None):
    """The PID holding the lab host's namespaces (``lab``: another lab's inventory.load(), else the main lab)."""
    return pathlib.Path((lab or LAB).hosts[host].pidfile).read_text().strip()


def sh(host, script, check=True, timeout=60, lab=None):
    """Run a shell script inside a lab host (its mount, network and UTS namespaces)."""
    proc = subprocess.run(["nsenter", "-t", holder(host, lab), "-m", "-n", "-u", "--", "/bin/sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s: %r failed (%d): %s" % (host, script, proc.returncode, proc.stderr))
    return proc


def _playbook_argv(name, args):
    return ["ansible-playbook", "-i", LAB_INVENTORY, "playbooks/%s.yml" % name, *args]


_ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")


def playbook(name, *args, timeout=900):
    """Run one of the collection's playbooks against the lab; returns the CompletedProcess."""
    return subprocess.run(_playbook_argv(name, args), cwd=ROOT, env=_ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)


def playbook_process(name, *args):
    """Start a playbook and read its output line by line (to interrupt it). In a session of its
    own, so that its workers can be ended with it (os.killpg)."""
    return subprocess.Popen(_playbook_argv(name, args), cwd=ROOT, env=_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def recap(proc):
    """{host: {'ok': n, 'changed': n, 'failed': n, ...}} from a playbook's PLAY RECAP."""
    result = {}
    for line in proc.stdout.splitlines():
        if ":" in line and "ok=" in line and "changed=" in line:
            host, _sep, counts = line.partition(":")
            result[host.strip()] = {k: int(v) for k, v in (kv.split("=") for kv in counts.split())}
    return result


def assert_ok(proc, changed=None):
    counts = recap(proc)
    assert proc.returncode == 0 and counts, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
    if changed is not None:
        assert {h: c["changed"] for h, c in counts.items()} == {h: changed for h in counts}, counts
    return counts


def snapshot():
    """Everything the collection may touch on every lab host, to prove a run changed nothing."""
    state = {}
    for host in ADDR:
        script = ("for save in iptables-save ip6tables-save; do $save | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]//'; "
                  "done; echo; ip rule list; ip -6 rule list; echo; ip route show table all; ip -6 route show table all; "
                  "echo; ls -la /etc/tproxy-envoy /usr/local/sbin /etc/sysctl.d 2>&1; "
                  "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/rp_filter "
                  "/proc/sys/net/ipv4/conf/all/send_redirects /proc/sys/net/ipv6/conf/all/forwarding "
                  "/proc/sys/net/ipv6/conf/*/accept_ra")
        if host in ENGINES:
            script += "; docker ps -a --format '{{.Names}} {{.Image}} {{.Status}}' | sed -E 's/ (Up|Exited).*//'"
        state[host] = sh(host, script).stdout
    return state


def client_get(url, timeout=10):
    return sh("client", "curl -sS -i --max-time %d %s" % (timeout, url), check=False)


def curl6(path="/ip"):
    """GET the web server's IPv6 address from the client; the parsed JSON body."""
    out = sh("client", "curl -sS -6 --max-time 10 'http://[%s]%s'" % (ADDR6["web"], path)).stdout
    return json.loads(out)


def assert_ipv6_goes_through_envoy():
    """A request from the client to the web server's IPv6 address is Envoy's, and the server sees the
    router's IPv6 address (Envoy's upstream connection), not the client's."""
    before = envoy_stat("http.tproxy_80.downstream_rq_total")
    assert curl6()["origin"] == ADDR6["router"]
    assert envoy_stat("http.tproxy_80.downstream_rq_total") == before + 1


def envoy_stat(name):
    out = sh("router", "curl -s http://127.0.0.1:19000/stats?filter=%s" % name, check=False).stdout
    for line in out.splitlines():
        key, _sep, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def pytest_collection_modifyitems(items):
    """test_hardening first: it starts from a lab the collection never touched, which a fresh lab is
    (after any other module it would have to make the lab anew). Each module sets the lab to the state
    it needs, so the order of the others does not matter."""
    items.sort(key=lambda item: item.module.__name__ != "test_hardening")  # a stable sort


@pytest.fixture(scope="session")
def lab():
    """A fresh lab with nothing of the collection on it; removed at the end."""
    subprocess.run([str(ROOT / "tools/lab/lab.sh"), "down"], check=True, timeout=300)
    subprocess.run([str(ROOT / "tools/lab/lab.sh"), "up"], check=True, timeout=900)
    yield ADDR
    playbook("teardown")
    subprocess.run([str(ROOT / "tools/lab/lab.sh"), "down"], check=True, timeout=300)


def docker_json(host, *args):
    return json.loads(sh(host, "docker " + " ".join(args)).stdout)
