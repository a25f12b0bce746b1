"""The control path: how long the playbooks take against the lab, and what Ansible settings do.

Order matters for the shared lab: a warm site.yml runs first and must pass (otherwise the
lab is not torn down at all); then three cycles of teardown.yml, a cold site.yml and a warm
rerun (medians of 3 with their spread, against TARGETS), verify.yml, and a warm rerun with
pipelining off. The lab ends converged, as it started.

Each playbook runs under measure_command(): its wall time, and the controller's memory (the
peak of the summed PSS of ansible-playbook and its forks, sampled; the largest process's max RSS
from wait4).
"""

import configparser
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ANSIBLE_CFG = os.path.join(REPO, "ansible.cfg")
LAB_INVENTORY = os.path.join(REPO, "inventories", "lab")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
TASK_TIME = re.compile(r"^(.+?) -+ (\d+\.\d+)s$", re.M)
CYCLES = 3
# Issue 18's targets for the control path on the lab (seconds): what each median is held to.
TARGETS = {"warm": 10.0, "cold": 30.0, "teardown": 8.0}
# A playbook that runs longer than this is stopped (make bench stays bounded).
PLAYBOOK_TIMEOUT = 900
SAMPLE_INTERVAL = 0.2


def parse_recap(stdout):
    """{host: {ok, changed, unreachable, failed}} from a PLAY RECAP."""
    return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(stdout)}


def slowest_tasks(stdout, count=5):
    """profile_tasks' summary lines: the slowest tasks of a run."""
    tasks = [(name.strip(), float(sec)) for name, sec in TASK_TIME.findall(stdout)]
    return sorted(tasks, key=lambda t: -t[1])[:count]


def configured_forks(cfg=ANSIBLE_CFG):
    """forks as the project's ansible.cfg sets it (Ansible's default, 5, without it)."""
    parser = configparser.ConfigParser()
    parser.read(cfg)
    return parser.getint("defaults", "forks", fallback=5)


def median_spread(values):
    """{median, low, high, runs} of a list of numbers (None for an empty list)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 1), "low": min(values), "high": max(values),
            "runs": len(values)}


# ---------------------------------------------------------------- the controller's memory


def _children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def process_tree(pid):
    """pid and its live descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += _children(current)
    return found


def _mnt_ns(pid):
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def _pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def controller_sample(pid, own_ns):
    """(summed PSS in KiB, process count) of pid's tree in the mount namespace own_ns: the
    controller's processes (in the lab, a module's process enters its host's namespaces with
    nsenter: that is the host's work, not the controller's)."""
    pids = [p for p in process_tree(pid) if _mnt_ns(p) == own_ns]
    return sum(_pss_kib(p) for p in pids), len(pids)


def measure_command(argv, env=None, cwd=REPO, timeout=PLAYBOOK_TIMEOUT, interval=SAMPLE_INTERVAL):
    """Run argv; returns {rc, stdout, stderr, seconds, peak_pss_kib, peak_processes, maxrss_kib}.

    maxrss_kib: wait4's ru_maxrss, the largest max RSS of the process and every descendant it
    reaped (in the lab that includes the modules' processes). peak_pss_kib: the highest sum of
    PSS (shared pages divided among their sharers, so forks are not counted twice) over the
    controller's processes of the tree, sampled every `interval` seconds.
    """
    own_ns = _mnt_ns(os.getpid())
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, text=True)  # pylint: disable=consider-using-with
        peak, peak_procs, stopping = 0, 0, None
        while True:
            done, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if done == proc.pid:
                break
            pss, count = controller_sample(proc.pid, own_ns)
            peak, peak_procs = max(peak, pss), max(peak_procs, count)
            elapsed = time.monotonic() - start
            if stopping is None and elapsed > timeout:
                stopping = elapsed
                os.kill(proc.pid, signal.SIGTERM)
            elif stopping is not None and elapsed > stopping + 15:
                os.kill(proc.pid, signal.SIGKILL)
            time.sleep(interval)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if stopping is not None:
        stderr += f"\n(stopped after {timeout} s)"
    return {"rc": proc.returncode, "stdout": stdout, "stderr": stderr, "seconds": seconds,
            "peak_pss_kib": peak, "peak_processes": peak_procs, "maxrss_kib": usage.ru_maxrss}


# ---------------------------------------------------------------- playbooks


def playbook(name, extra_env=None, label=None, inventory=LAB_INVENTORY, forks=None, kind=None, extra_args=()):
    """One ansible-playbook run, timed and measured. kind: warm, cold or teardown when the run
    counts towards that median; extra_args: more ansible-playbook arguments (--limit, -e)."""
    env = dict(os.environ, ANSIBLE_CONFIG=ANSIBLE_CFG,
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", ANSIBLE_NOCOLOR="1")
    env.update(extra_env or {})
    if forks:
        env["ANSIBLE_FORKS"] = str(forks)
    argv = ["ansible-playbook", "-i", inventory, os.path.join(REPO, "playbooks", name), *extra_args]
    res = measure_command(argv, env)
    recap = parse_recap(res["stdout"])
    changed = sum(h["changed"] for h in recap.values())
    failed = sum(h["failed"] + h["unreachable"] for h in recap.values())
    return {
        "name": label or name, "playbook": name, "seconds": round(res["seconds"], 1), "rc": res["rc"],
        "changed": changed, "failed": failed, "hosts": len(recap), "kind": kind,
        "forks": forks or configured_forks(),
        "recap": f"rc={res['rc']} changed={changed} failed={failed}",
        "slowest": slowest_tasks(res["stdout"]),
        "env": extra_env or {},
        "peak_pss_mib": round(res["peak_pss_kib"] / 1024, 1), "peak_processes": res["peak_processes"],
        "maxrss_mib": round(res["maxrss_kib"] / 1024, 1),
        "tail": "" if res["rc"] == 0 else (res["stdout"][-2500:] + res["stderr"][-1000:]),
    }


def lab_script(action, inventory=None, label=None):
    """tools/lab/lab.sh ACTION, on the lab of `inventory` (LAB_INVENTORY) or the regular one."""
    env = dict(os.environ)
    if inventory:
        env["LAB_INVENTORY"] = inventory
    start = time.monotonic()
    res = subprocess.run([os.path.join(REPO, "tools", "lab", "lab.sh"), action], cwd=REPO, text=True, env=env,
                         capture_output=True, check=False, timeout=PLAYBOOK_TIMEOUT)
    return {"name": label or f"tools/lab/lab.sh {action}", "seconds": round(time.monotonic() - start, 1),
            "rc": res.returncode, "recap": f"rc={res.returncode}",
            "tail": "" if res.returncode == 0 else res.stderr[-2000:]}


def summarize(steps):
    """{kind: {median, low, high, runs, target}} over the successful steps of each kind in TARGETS."""
    summary = {}
    for kind, target in TARGETS.items():
        spread = median_spread([s["seconds"] for s in steps if s.get("kind") == kind and s["rc"] == 0])
        if spread:
            summary[kind] = dict(spread, target=target)
    return summary


def measure(log, lab_cycle=False, reconverge=False):
    """Time the playbooks. lab_cycle: also remove and recreate the whole lab once.

    reconverge: go on with teardown + cold converge even if the first warm site.yml fails
    (a lab converged by an older checkout that the current one cannot update in place).
    """
    steps = []
    problems = []

    def step(result):
        steps.append(result)
        log(f"control: {result['name']}: {result['seconds']} s ({result['recap']})")
        if result["rc"] != 0:
            problems.append(f"{result['name']} failed:\n{result['tail']}")
        return result["rc"] == 0

    if not step(playbook("site.yml", label="site.yml warm (before)")) and not reconverge:
        log("control: site.yml does not converge on this lab as it is: not tearing it down "
            "(--reconverge tears it down and converges it from scratch)")
        return {"steps": steps, "problems": problems}
    warm = None
    for cycle in range(1, CYCLES + 1):
        ok = step(playbook("teardown.yml", label=f"teardown.yml ({cycle}/{CYCLES})", kind="teardown"))
        # Whatever happened above, converge again: the lab must end as it started.
        cold = playbook("site.yml", label=f"site.yml cold ({cycle}/{CYCLES})" if ok else
                        "site.yml (repair after a failure)", kind="cold" if ok else None)
        if not (step(cold) and ok):
            break
        warm = playbook("site.yml", label=f"site.yml warm ({cycle}/{CYCLES}, changed=0 expected)", kind="warm")
        step(warm)
        if warm["rc"] == 0 and warm["changed"]:
            problems.append(f"{warm['name']} reported changed={warm['changed']}")
    fresh = None
    if lab_cycle and not problems:
        if step(playbook("teardown.yml", label="teardown.yml (before lab.sh down)")) \
                and step(lab_script("down")):
            fresh = lab_script("up", label="tools/lab/lab.sh up (no lab)")
            step(fresh)
        step(playbook("site.yml", label="site.yml cold (new lab)"))
    verify = playbook("verify.yml")
    step(verify)
    up = lab_script("up", label="tools/lab/lab.sh up (lab already up)")
    step(up)
    # One Ansible setting changed: pipelining (ansible.cfg turns it on). One run: the table compares
    # it with the warm runs' spread. Cached facts (gathering=smart) and strategy=free are no longer
    # varied: site.yml gathers facts in one play (the routers', network subset) and each play but
    # the first targets one group; both measured within the warm runs' spread.
    step(playbook("site.yml", {"ANSIBLE_PIPELINING": "False"}, "site.yml warm, pipelining off"))
    summary = summarize(steps)
    derived = {}
    if "warm" in summary:
        derived["make lab, lab already up (lab.sh up + site.yml warm median + verify.yml)"] = round(
            up["seconds"] + summary["warm"]["median"] + verify["seconds"], 1)
    if fresh and fresh["rc"] == 0:
        cold_new = next(s for s in steps if s["name"] == "site.yml cold (new lab)")
        derived["make lab, no lab (lab.sh up + site.yml cold + verify.yml)"] = round(
            fresh["seconds"] + cold_new["seconds"] + verify["seconds"], 1)
    return {"steps": steps, "problems": problems, "summary": summary, "derived": derived}
