"""The control path: how long the playbooks take against the lab, and what Ansible settings do.

Order matters for the shared lab: a warm site.yml runs first and must pass (otherwise the
lab is not torn down at all); then teardown.yml, a cold site.yml, warm reruns with Ansible
variations, and verify.yml. The lab ends converged, as it started.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
TASK_TIME = re.compile(r"^(.+?) -+ (\d+\.\d+)s$", re.M)


def parse_recap(stdout):
    """{host: {ok, changed, unreachable, failed}} from a PLAY RECAP."""
    return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(stdout)}


def slowest_tasks(stdout, count=5):
    """profile_tasks' summary lines: the slowest tasks of a run."""
    tasks = [(name.strip(), float(sec)) for name, sec in TASK_TIME.findall(stdout)]
    return sorted(tasks, key=lambda t: -t[1])[:count]


def playbook(name, extra_env=None, label=None):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", ANSIBLE_NOCOLOR="1")
    env.update(extra_env or {})
    argv = ["ansible-playbook", "-i", os.path.join(REPO, "inventories", "lab"),
            os.path.join(REPO, "playbooks", name)]
    start = time.monotonic()
    res = subprocess.run(argv, cwd=REPO, env=env, text=True, capture_output=True, check=False)
    seconds = time.monotonic() - start
    recap = parse_recap(res.stdout)
    changed = sum(h["changed"] for h in recap.values())
    failed = sum(h["failed"] + h["unreachable"] for h in recap.values())
    return {
        "name": label or name, "seconds": round(seconds, 1), "rc": res.returncode,
        "changed": changed, "failed": failed,
        "recap": f"rc={res.returncode} changed={changed} failed={failed}",
        "slowest": slowest_tasks(res.stdout),
        "env": extra_env or {},
        "tail": "" if res.returncode == 0 else (res.stdout[-2500:] + res.stderr[-1000:]),
    }


def lab_script(action):
    start = time.monotonic()
    res = subprocess.run([os.path.join(REPO, "tools", "lab", "lab.sh"), action], cwd=REPO, text=True,
                         capture_output=True, check=False)
    return {"name": f"tools/lab/lab.sh {action}", "seconds": round(time.monotonic() - start, 1),
            "rc": res.returncode, "recap": f"rc={res.returncode}",
            "tail": "" if res.returncode == 0 else res.stderr[-2000:]}


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

    # The first run also fills a fact cache for the gathering=smart rerun at the end (the lab
    # hosts' facts do not change in between), which saves a run of its own.
    cache = tempfile.mkdtemp(prefix="tproxy-bench-facts-")
    facts = {"ANSIBLE_GATHERING": "smart", "ANSIBLE_CACHE_PLUGIN": "jsonfile",
             "ANSIBLE_CACHE_PLUGIN_CONNECTION": cache}
    try:
        return _measure(log, step, steps, problems, facts, lab_cycle, reconverge)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _measure(log, step, steps, problems, facts, lab_cycle, reconverge):  # pylint: disable=too-many-arguments
    if not step(playbook("site.yml", facts, label="site.yml warm (before; fills a fact cache)")) \
            and not reconverge:
        log("control: site.yml does not converge on this lab as it is: not tearing it down "
            "(--reconverge tears it down and converges it from scratch)")
        return {"steps": steps, "problems": problems}
    ok = step(playbook("teardown.yml"))
    if ok and lab_cycle:
        ok = step(lab_script("down")) and step(lab_script("up"))
    # Whatever happened above, converge again: the lab must end as it started.
    cold = playbook("site.yml", label="site.yml cold" if ok else "site.yml (repair after a failure)")
    step(cold)
    warm = playbook("site.yml", label="site.yml warm (changed=0 expected)")
    step(warm)
    if warm["rc"] == 0 and warm["changed"]:
        problems.append(f"warm site.yml reported changed={warm['changed']}")
    verify = playbook("verify.yml")
    step(verify)
    up = dict(lab_script("up"), name="tools/lab/lab.sh up (lab already up)")
    step(up)
    # Ansible settings: each warm rerun differs from the project's ansible.cfg in one thing.
    step(playbook("site.yml", {"ANSIBLE_PIPELINING": "False"}, "site.yml warm, pipelining off"))
    # forks is not varied: 3 hosts, and each play but the first targets one group (forks=1
    # measured 31.1 s against 28.9 s once); dropped to keep make bench within 10 minutes.
    step(playbook("site.yml", facts, "site.yml warm, facts cached (gathering=smart)"))
    # strategy=free is not varied either: each play but the first targets one group, so
    # there is nothing to interleave (measured 32.4 s against 28.9 s once); kept out for time.
    derived = {"make lab, lab already up (lab.sh up + site.yml warm + verify.yml)":
               round(up["seconds"] + warm["seconds"] + verify["seconds"], 1)}
    if lab_cycle and ok:
        fresh = next(s["seconds"] for s in steps if s["name"] == "tools/lab/lab.sh up")
        derived["make lab, no lab (lab.sh up + site.yml cold + verify.yml)"] = round(
            fresh + cold["seconds"] + verify["seconds"], 1)
    return {"steps": steps, "problems": problems, "derived": derived}
