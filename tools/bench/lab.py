"""The lab as the benchmark sees it: addresses, namespaces, and the preflight check.

The bench needs the lab up (tools/lab/lab.sh up) with site.yml applied: the router's own
interception chain, its policy route and its Envoy container are what path (b) measures,
and the bench's own TPROXY rules reuse the same mark and routing table.
"""

import json
import os
import subprocess
import sys

import yaml

# The lab's layout has one home, the lab inventory; tools/lab/inventory.py reads it.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab"))
import inventory  # noqa: E402  pylint: disable=wrong-import-position

LAB = inventory.load()
LAB_DIR = LAB.dir
CLIENT, ROUTER, WEB = (LAB.hosts[name].address for name in ("client", "router", "web"))
NETNS = {name: host.netns for name, host in LAB.hosts.items()}
# The roles' settings have one home, their defaults (the lab inventory overrides none of these).
_ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")


def _defaults(role):
    with open(os.path.join(_ROLES, role, "defaults", "main.yml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


_ROUTER, _WEBSERVER = _defaults("router"), _defaults("webserver")
ENVOY_CONTAINER = _ROUTER["router_envoy_container_name"]
ENVOY_ADMIN = f"http://{_ROUTER['router_envoy_admin_address']}:{_ROUTER['router_envoy_admin_port']}"
PRODUCT_CHAIN = "TPROXY-ENVOY"
HTTPBIN_PORT = _WEBSERVER["webserver_port"]


def router_settings(names=("router_access_log", "router_policy", "router_policy_default")):
    """The lab router's values of the role's variables `names`: its inventory's, else the role's
    defaults (what site.yml deploys; the bench's renders keep them unless a path measures another)."""
    inventory_vars = inventory.raw_hostvars()["router"][0]
    return {name: inventory_vars.get(name, _ROUTER[name]) for name in names}


class LabNotReady(RuntimeError):
    """The lab is not in the state the bench needs; the message says what to run."""


def netns_path(host):
    return f"/run/netns/{NETNS[host]}"


def in_netns(host, argv):
    """argv run inside a lab host's network namespace (and nothing else of it).

    nsenter execs the command, so the PID that Popen reports is the command's own.
    """
    return ["nsenter", f"--net={netns_path(host)}", *argv]


def run(argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, text=True, capture_output=True, **kwargs)


def docker(host, *args):
    sock = f"unix://{LAB_DIR}/{host}/run/docker.sock"
    return run(["docker", "-H", sock, *args])


def envoy_container_pid():
    """The product's Envoy, as seen from here (the lab shares the PID namespace)."""
    out = docker("router", "inspect", "--format", "{{json .State}}", ENVOY_CONTAINER).stdout
    state = json.loads(out)
    if not state.get("Running") or not state.get("Pid"):
        raise LabNotReady(f"container {ENVOY_CONTAINER} is not running on the router")
    return int(state["Pid"])


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def _ppid(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def log_carriers(envoy_pid):
    """{name: PID} of what carries the product container's standard output into its log: the
    container's shim (its parent; it copies the output to the engine) and the router's dockerd
    (its log driver writes the file). Either is left out when it cannot be found for certain."""
    found = {}
    try:
        shim = _ppid(envoy_pid)
    except (OSError, ValueError, IndexError):
        shim = None
    if shim and _comm(shim).startswith("containerd-shim"):
        found["containerd-shim"] = shim
    try:
        with open(os.path.join(LAB_DIR, "router", "dockerd.pid"), encoding="ascii") as f:
            dockerd = int(f.read().strip())
    except (OSError, ValueError):
        dockerd = None
    if dockerd and _comm(dockerd) == "dockerd":
        found["dockerd"] = dockerd
    return found


def admin_get(path, host="router", base=ENVOY_ADMIN):
    """GET on an Envoy admin endpoint bound to loopback inside the router's netns."""
    res = run(in_netns(host, ["curl", "-sS", "--max-time", "2", base + path]), check=False)
    return res.returncode, res.stdout


def preflight():
    """Fail clearly unless the lab is up and site.yml has been applied."""
    missing = [name for name in NETNS.values() if not os.path.exists(f"/run/netns/{name}")]
    if missing:
        raise LabNotReady(f"lab namespaces missing ({', '.join(missing)}): run `make lab` first")
    if os.geteuid() != 0:
        raise LabNotReady("the bench needs root (namespaces, iptables)")
    rules = run(in_netns("router", ["iptables", "-t", "mangle", "-S", "PREROUTING"]), check=False)
    if f"-j {PRODUCT_CHAIN}" not in rules.stdout:
        raise LabNotReady(f"no {PRODUCT_CHAIN} jump in the router's mangle PREROUTING: "
                          "site.yml is not applied (run `make lab` or `make site`)")
    try:
        envoy_container_pid()
    except subprocess.CalledProcessError as exc:
        raise LabNotReady(f"cannot inspect {ENVOY_CONTAINER} on the router: {exc.stderr.strip()}")
    code, body = admin_get("/ready")
    if code != 0 or "LIVE" not in body:
        raise LabNotReady("the product's Envoy admin /ready is not LIVE on the router")
    probe = run(in_netns("client", ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                    "--max-time", "5", f"http://{WEB}:{HTTPBIN_PORT}/get"]),
                check=False)
    if probe.stdout != "200":
        raise LabNotReady(f"client -> web httpbin did not answer 200 ({probe.stdout or probe.stderr}): "
                          "run `make verify` to see which hop fails")


VULNERABILITIES = "/sys/devices/system/cpu/vulnerabilities"
# The kernel's answers that change what user-space code costs on a context switch or a syscall
# (Spectre v2: retpolines, IBRS, IBPB, STIBP): they differ between CPU vendors and hypervisors.
MITIGATIONS = ("spectre_v2", "spectre_v1", "retbleed", "spec_rstack_overflow", "mds", "meltdown")


def hardware_counters():
    """Whether perf can count cycles, cache and branch misses here: a PMU (`cpu` event source,
    Intel and AMD alike) and perf_event_paranoid. Many VMs expose none; then only software
    events (cpu-clock) and valgrind's counts remain."""
    info = {"pmu": os.path.isdir("/sys/bus/event_source/devices/cpu")
            or os.path.isdir("/sys/bus/event_source/devices/cpu_core")}
    try:
        with open("/proc/sys/kernel/perf_event_paranoid", encoding="ascii") as f:
            info["perf_event_paranoid"] = int(f.read())
    except (OSError, ValueError):
        pass
    return info


def machine():
    """What the numbers were measured on: CPU model, cores, clock, kernel, mitigations, counters."""
    info = {"cpus": os.cpu_count(), "kernel": os.uname().release}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and "cpu" not in info:
                    info["cpu"] = line.split(":", 1)[1].strip()
                elif line.startswith("cpu MHz") and "cpu_mhz" not in info:
                    info["cpu_mhz"] = round(float(line.split(":", 1)[1]))
        with open("/proc/meminfo", encoding="utf-8") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    mitigations = {}
    for name in MITIGATIONS:
        try:
            with open(os.path.join(VULNERABILITIES, name), encoding="utf-8") as f:
                mitigations[name] = f.read().strip()
        except OSError:
            pass
    if mitigations:
        info["mitigations"] = mitigations
    info["counters"] = hardware_counters()
    virt = run(["systemd-detect-virt"], check=False).stdout.strip()
    if virt:
        info["virt"] = virt
    for name, argv in {"wrk": ["wrk", "-v"], "haproxy": ["haproxy", "-v"], "nginx": ["nginx", "-v"]}.items():
        res = run(argv, check=False)
        info[name] = (res.stdout or res.stderr).splitlines()[0].strip() if (res.stdout or res.stderr) else "?"
    return info


# httpbin closes every connection (one synchronous gunicorn worker): each request through the
# router is a new connection, and at ~1k req/s the client's and the router's ephemeral ports
# all sit in TIME_WAIT within a minute; connect() then burns CPU searching for a free port and
# fails. Reusing TIME_WAIT ports for new outgoing connections (timestamps keep it safe) is the
# usual load-test setting; the bench sets it for its run only and restores the old value.
BENCH_SYSCTLS = {("client", "net.ipv4.tcp_tw_reuse"): "1", ("router", "net.ipv4.tcp_tw_reuse"): "1"}


def _sysctl_path(name):
    return "/proc/sys/" + name.replace(".", "/")


def set_sysctls(values):
    """Set per-netns sysctls; returns the old values for restore_sysctls."""
    old = {}
    for (host, name), value in values.items():
        old[(host, name)] = run(in_netns(host, ["cat", _sysctl_path(name)])).stdout.strip()
        run(in_netns(host, ["sh", "-c", f'echo {value} > {_sysctl_path(name)}']))
    return old


def restore_sysctls(old):
    for (host, name), value in old.items():
        run(in_netns(host, ["sh", "-c", f'echo {value} > {_sysctl_path(name)}']), check=False)
