"""Issue 14, item 4: a real reboot, with systemd as init (design §5, "A real reboot").

The router and the client are Debian root file systems booted by systemd-nspawn with systemd as PID 1
(tools/reboot/boot.sh), each in a network namespace made anew for every boot; the web server is a
namespace host of tools/lab/lab.sh. site.yml configures them as a user's hosts (systemd is the service
manager, so the netstate role enables its boot units). Then the hosts are powered off and booted
again, and, without running Ansible, the test proves that the router's interception and the client's
route come back from the boot units, that the router is closed while Envoy does not listen yet (an
intercepted connection is dropped, never forwarded to the web server around the proxy), and that
the same request is served through Envoy once its engine starts. teardown.yml then puts back the
sysctls that the router role changed.

The router's Docker engine runs outside the booted root, in the router's network namespace: see
tools/reboot/boot.sh for why. Its own lab (tests/reboot/lab, tests/reboot/booted): runs beside the
main lab. Needs root.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "lab"))
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
import inventory  # noqa: E402  pylint: disable=wrong-import-position
from netstate_paths import netstate_paths  # noqa: E402  pylint: disable=wrong-import-position
from polling import wait_until  # noqa: E402  pylint: disable=wrong-import-position

HERE = pathlib.Path(__file__).resolve().parent
LAB_INVENTORY = HERE / "lab"
BOOTED_INVENTORY = HERE / "booted"
BOOT = str(ROOT / "tools" / "reboot" / "boot.sh")
LAB_SH = str(ROOT / "tools" / "lab" / "lab.sh")
DOCKER = "/usr/bin/docker"

LAB = inventory.load(LAB_INVENTORY)
WEB = "rb-web"
_BOOTED = yaml.safe_load((BOOTED_INVENTORY / "hosts.yml").read_text())
ADDR = dict(LAB.addresses)
for _group in ("routers", "clients"):
    for _name, _vars in _BOOTED[_group]["hosts"].items():
        ADDR[_name] = _vars["ansible_host"]
ROUTER, CLIENT, ENGINE = "rb-router", "rb-client", "rb-engine"
BOOTED = (ROUTER, CLIENT)
NETNS = {host: "tpr-" + host for host in BOOTED}
UNIT = {ROUTER: netstate_paths("router")["unit"], CLIENT: netstate_paths("client")["unit"]}
# What the router role may change, read before site.yml, after it and after teardown.yml.
SYSCTLS = ("net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.all.send_redirects",
           "net.ipv4.conf.default.send_redirects", "net.ipv4.conf.eth0.send_redirects")

# Marks a host's kernel network state before a reboot; MARKED fails once the mark is gone.
MARK = "ip route add blackhole 198.51.100.251/32 table 250 && iptables -w -N RB-REBOOT-MARK"
MARKED = "ip route show table 250 | grep -q 198.51.100.251 && iptables -w -S RB-REBOOT-MARK >/dev/null"

ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
           LAB_INVENTORY=str(LAB_INVENTORY))
ENV.setdefault("PYTHON", sys.executable)
TIMINGS = []


def host_dir(host):
    return pathlib.Path(LAB.dir) / host


def run(argv, timeout=600, check=True):
    proc = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (argv, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


def phase(name, started):
    TIMINGS.append((name, time.monotonic() - started))


def sh(host, script, check=True, timeout=60):
    """A shell script inside a booted host: all of PID 1's namespaces, as a login there would be."""
    pid = (host_dir(host) / "init.pid").read_text().strip()
    proc = subprocess.run(["nsenter", "-t", pid, "-m", "-u", "-i", "-n", "-p", "--", "/bin/sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s: %r failed (%d): %s%s" % (host, script, proc.returncode, proc.stdout, proc.stderr))
    return proc


def docker(host, *args, check=True):
    return run([DOCKER, "-H", "unix://%s/run/docker.sock" % host_dir(host), *args], timeout=120, check=check)


def playbook(name):
    proc = run(["ansible-playbook", "-i", str(LAB_INVENTORY), "-i", str(BOOTED_INVENTORY),
                "playbooks/%s.yml" % name], timeout=900, check=False)
    assert proc.returncode == 0 and "failed=0" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


def boot(host):
    run([BOOT, "boot", str(host_dir(host)), NETNS[host], LAB.lan_netns, ADDR[host]], timeout=120)


def poweroff(host):
    run([BOOT, "poweroff", str(host_dir(host)), NETNS[host]], timeout=180)


def system_state(host):
    """systemctl is-system-running once the boot is over (starting/initializing until then)."""
    state = {}

    def settled():
        state["now"] = sh(host, "systemctl is-system-running", check=False).stdout.strip()
        return state["now"] not in ("initializing", "starting", "")

    wait_until(settled, 90, 0.5)
    return state["now"]


def sysctls(host):
    out = sh(host, "sysctl -n " + " ".join(SYSCTLS)).stdout.split()
    return dict(zip(SYSCTLS, out))


def monotonic(host, unit, prop):
    return int(sh(host, "systemctl show -P %s %s" % (prop, unit)).stdout.strip())


def web_requests():
    """The requests for /get in the web server's access log, whoever sent them."""
    logs = docker(WEB, "logs", "tproxy-httpbin")
    return [line for line in (logs.stdout + logs.stderr).splitlines() if "GET /get" in line]


def envoy_requests():
    out = sh(ROUTER, "curl -s --max-time 5 'http://127.0.0.1:19000/stats?filter=downstream_rq_total'", check=False).stdout
    # Not http.admin.*: the admin listener counts this very request and the /ready probes.
    return sum(int(line.split(": ")[1]) for line in out.splitlines()
               if line.startswith("http.") and not line.startswith("http.admin.")
               and line.split(": ")[0].endswith(".downstream_rq_total"))


def tproxy_packets():
    """Packets that the router's TPROXY rules took (intercepted), from the mangle table's counters."""
    out = sh(ROUTER, "iptables -w -t mangle -L -n -v -x").stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if " TPROXY " in " %s " % line)


def client_get(timeout):
    return sh(CLIENT, "curl -sS -o /dev/null -w '%%{http_code}' --max-time %d http://%s/get" % (timeout, ADDR[WEB]),
              check=False, timeout=timeout + 30)


def envoy_ready():
    return sh(ROUTER, "curl -s --max-time 2 http://127.0.0.1:19000/ready", check=False).stdout.strip() == "LIVE"


def start_engine():
    run([BOOT, "engine-start", str(host_dir(ENGINE)), NETNS[ROUTER]], timeout=120)


def stop_engine():
    run([BOOT, "engine-stop", str(host_dir(ENGINE))], timeout=180)


def leftovers():
    """What the lab may leave on this machine: mounts under its directory, its netns, its processes."""
    found = []
    mounts = pathlib.Path("/proc/self/mountinfo").read_text()
    found += [line.split()[4] for line in mounts.splitlines() if line.split()[4].startswith(LAB.dir)]
    found += [str(path) for path in pathlib.Path("/sys/fs/cgroup").glob("*/tproxy-reboot")]
    found += [str(path) for path in pathlib.Path("/run/systemd/nspawn/propagate").glob("rb-*")]
    if os.path.isdir("/run/netns"):
        found += [name for name in os.listdir("/run/netns") if name.startswith("tpr-")]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = pathlib.Path("/proc/%s/cmdline" % pid).read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if LAB.dir in cmdline:
                found.append("process %s: %s" % (pid, cmdline[:120]))
    return found


def lab_down():
    for host in BOOTED:
        if host_dir(host).exists():
            poweroff(host)
    if host_dir(ENGINE).exists():
        stop_engine()
    run([LAB_SH, "down"], timeout=300)


class State:
    def __init__(self):
        self.configured = False
        self.before = None  # the router's sysctls before site.yml


@pytest.fixture(scope="module")
def reboot_lab(request):
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    started = time.monotonic()
    lab_down()  # leftovers of an interrupted run
    phase("clean", started)
    try:
        started = time.monotonic()
        run([LAB_SH, "up"], timeout=900)
        phase("lab.sh up (LAN, web host, its engine)", started)
        started = time.monotonic()
        run([BOOT, "build"], timeout=900)
        run([BOOT, "install", str(host_dir(ROUTER)), ROUTER, "%s/%d" % (ADDR[ROUTER], LAB.prefix_length), "standin"])
        run([BOOT, "install", str(host_dir(CLIENT)), CLIENT, "%s/%d" % (ADDR[CLIENT], LAB.prefix_length)])
        phase("root file systems", started)
        started = time.monotonic()
        for host in BOOTED:
            boot(host)
        for host in BOOTED:
            assert system_state(host) == "running", sh(host, "systemctl --failed --no-legend", check=False).stdout
        phase("first boot", started)
        started = time.monotonic()
        start_engine()
        run(["bash", str(ROOT / "tools/lab/images.sh"), "load", "%s/run/docker.sock" % host_dir(ENGINE), "envoy"])
        phase("router's engine", started)
        yield State()
    finally:
        started = time.monotonic()
        lab_down()
        phase("down", started)
        with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            reporter.write_line("")
            for name, seconds in TIMINGS:
                reporter.write_line("reboot test phase: %-45s %6.1f s" % (name, seconds))
        assert leftovers() == []


def booted(host):
    pidfile = host_dir(host) / "nspawn.pid"
    return pidfile.exists() and os.path.exists("/proc/%s" % pidfile.read_text().strip())


def engine_answers():
    return docker(ENGINE, "version", check=False).returncode == 0


@pytest.fixture
def configured(reboot_lab):
    """Both hosts booted, the router's engine up (a failed test may leave them down), site.yml
    applied; the router's sysctls read before its first run."""
    for host in BOOTED:
        if not booted(host):
            boot(host)
            assert system_state(host) == "running"
    if not engine_answers():
        start_engine()
    if not reboot_lab.configured:
        if reboot_lab.before is None:
            reboot_lab.before = sysctls(ROUTER)
        started = time.monotonic()
        playbook("site")
        phase("site.yml", started)
        reboot_lab.configured = True
    return reboot_lab


def test_site_enables_the_boot_units_on_systemd_hosts_and_sets_the_router_sysctls(configured):
    for host in BOOTED:
        assert sh(host, "systemctl is-enabled " + UNIT[host], check=False).stdout.strip() == "enabled", host
    after = sysctls(ROUTER)
    assert after != configured.before, after
    saved = json.loads(sh(ROUTER, "cat /etc/tproxy-envoy/sysctl-before.json").stdout)
    assert set(saved) <= set(SYSCTLS), "the router role changes sysctls this test does not read: %s" % saved
    assert saved == configured.before


def test_after_a_real_reboot_interception_and_routes_come_back_closed_until_envoy_listens(configured):
    started = time.monotonic()
    assert client_get(10).stdout == "200"
    container = docker(ENGINE, "inspect", "-f", "{{.Id}}", "tproxy-envoy").stdout.strip()
    # Kernel network state that no unit makes: a reboot must lose it (a fresh network namespace).
    for host in BOOTED:
        sh(host, MARK)
        assert sh(host, MARKED, check=False).returncode == 0
    # Shutdown: Docker stops before the network goes (dockerd stops Envoy's container), then the hosts.
    stop_engine()
    for host in BOOTED:
        poweroff(host)
    assert not any(os.path.exists("/run/netns/" + NETNS[host]) for host in BOOTED)
    phase("shutdown", started)

    started = time.monotonic()
    for host in BOOTED:
        boot(host)
    for host in BOOTED:
        # A fresh kernel network state: nothing of the previous boot's routes or rules is left.
        assert sh(host, MARKED, check=False).returncode != 0, host
        assert system_state(host) == "running", sh(host, "systemctl --failed --no-legend", check=False).stdout
        assert sh(host, "systemctl --failed --no-legend --plain").stdout.strip() == ""
        assert sh(host, "systemctl is-active " + UNIT[host], check=False).stdout.strip() == "active", host
        # The boot unit's own check: the live state is what the host's rendered state says.
        assert sh(host, "%s check" % netstate_paths("router" if host == ROUTER else "client")["script"]).returncode == 0
    phase("boot (systemd running)", started)

    # (a) The router: interception, applied before the network and before Docker.
    assert "TPROXY" in sh(ROUTER, "iptables-save -t mangle").stdout
    assert "lookup 100" in sh(ROUTER, "ip rule list").stdout
    assert sysctls(ROUTER)["net.ipv4.ip_forward"] == "1"  # systemd-sysctl, from the role's sysctl.d file
    unit_up = monotonic(ROUTER, UNIT[ROUTER], "ActiveEnterTimestampMonotonic")
    assert 0 < unit_up <= monotonic(ROUTER, "network-pre.target", "ActiveEnterTimestampMonotonic")
    assert unit_up <= monotonic(ROUTER, "docker.service", "InactiveExitTimestampMonotonic")
    assert unit_up <= monotonic(ROUTER, "systemd-networkd.service", "InactiveExitTimestampMonotonic")
    # (b) The client: its route through the router, once the network is online.
    route = sh(CLIENT, "ip -4 route get %s" % ADDR[WEB]).stdout
    assert "via %s" % ADDR[ROUTER] in route, route
    assert monotonic(CLIENT, UNIT[CLIENT], "InactiveExitTimestampMonotonic") >= monotonic(
        CLIENT, "network-online.target", "ActiveEnterTimestampMonotonic")

    # (c) Closed at boot: Docker (so Envoy) is not up yet; an intercepted connection is dropped by the
    # router, never forwarded to the web server around the proxy.
    started = time.monotonic()
    assert sh(ROUTER, "ss -Hltn 'sport = :4999'").stdout.strip() == ""
    seen_before = len(web_requests())
    taken_before = tproxy_packets()
    failed = client_get(3)
    assert failed.returncode != 0 and failed.stdout != "200", (failed.returncode, failed.stdout, failed.stderr)
    assert tproxy_packets() > taken_before  # the client's SYNs reached the router and were intercepted
    assert len(web_requests()) == seen_before
    phase("closed-at-boot probe", started)

    # Docker starts (as docker.service would, after the stand-in): Envoy's container comes back by its
    # restart policy, the same container as before the reboot, and the same request is served through it.
    started = time.monotonic()
    assert sh(ROUTER, "systemctl is-active docker.service").stdout.strip() == "active"
    start_engine()
    assert wait_until(envoy_ready, 60, 0.5), docker(ENGINE, "logs", "--tail", "50", "tproxy-envoy", check=False).stderr
    assert docker(ENGINE, "inspect", "-f", "{{.Id}}", "tproxy-envoy").stdout.strip() == container
    phase("engine start until Envoy is ready", started)
    served_before = envoy_requests()
    assert client_get(10).stdout == "200"
    assert envoy_requests() == served_before + 1
    assert len(web_requests()) == seen_before + 1


def test_teardown_restores_the_sysctls_the_router_role_changed(configured):
    started = time.monotonic()
    playbook("teardown")
    phase("teardown.yml", started)
    configured.configured = False
    assert sysctls(ROUTER) == configured.before
    for host in BOOTED:
        assert sh(host, "systemctl is-enabled " + UNIT[host], check=False).stdout.strip() != "enabled", host
