"""Where a proxy's time goes, counted: user-space instructions per request under callgrind.

CPU seconds on a shared 2-core VM move by ±20 % from run to run; an instruction count for
the same binary, config and requests does not (valgrind runs the proxy on a synthetic CPU,
whatever else the machine is doing). Each proxy runs under `valgrind --tool=callgrind`
with one worker, gets a short warm-up through the bench's TPROXY rule, then callgrind's
counters are dumped (which resets them), a fixed-length wrk run goes through, and they are
dumped again: the second dump holds exactly the instructions of that run, which divided by
the requests wrk completed gives instructions per request. The kernel's share (the TCP/IP
stack, the syscalls) is not in it: callgrind sees user space only.
"""

import os
import re
import shutil
import subprocess
import time

import lab
import load
import paths
import rules

RUN_S, SHORT_RUN_S, CONNS = 4, 2, 16
IDLE_S = 2  # the idle sample after each counted run (its rate is scaled to the run's length)
# Valgrind translates each code path the first time it runs: the first seconds are slow,
# and a proxy is warm once a one-second run completes this many requests.
WARM_REQUESTS, WARM_TRIES = 50, 30
START_TIMEOUT = 240  # Envoy under valgrind needs ~15 s alone, longer beside the others


def available():
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def callgrind_argv(argv, out_prefix, caches=False):
    """The proxy's command line under callgrind, its dumps written to out_prefix.PID.N. caches: also
    simulate the caches and the branch predictor (valgrind's model of a first-level cache of
    32 KiB each for code and data and a last-level cache like the host's; a predictor of its own),
    so that the misses per request, a property of the code, travel between machines."""
    sim = ["--cache-sim=yes", "--branch-sim=yes"] if caches else []
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_prefix}.%p",
            "--dump-instr=no", "--collect-jumps=no", *sim, *argv]


SUMMARY = re.compile(r"^summary:\s+([\d ]+)$", re.MULTILINE)
EVENTS = re.compile(r"^events:\s+(.+)$", re.MULTILINE)
# callgrind's event names, as the README reports them: instructions, first-level instruction
# cache misses, last-level misses (code and data), conditional and indirect branches mispredicted.
MISS_EVENTS = {"I1mr": "l1i_misses", "ILmr": "ll_code_misses", "D1mr": "l1d_read_misses",
               "DLmr": "ll_data_read_misses", "Bcm": "cond_mispredicts", "Bim": "indirect_mispredicts"}


def dump_events(text):
    """{event: total} of one callgrind dump file (its `events:` and `summary:` lines)."""
    match, names = SUMMARY.search(text), EVENTS.search(text)
    if not match:
        raise ValueError("callgrind dump without a summary line")
    values = [int(v) for v in match.group(1).split()]
    return dict(zip(names.group(1).split() if names else ["Ir"], values))


def dump_instructions(text):
    """The instruction total of one callgrind dump file (its `summary:` line)."""
    return dump_events(text)["Ir"]


def per_request(instructions, requests):
    if requests <= 0:
        raise ValueError("no request completed during the counted run")
    return instructions / requests


def _dump(pid, out_prefix, number, timeout=60):
    """Ask callgrind to write dump `number` and return its event totals."""
    subprocess.run(["callgrind_control", "--dump", str(pid)], capture_output=True, text=True,
                   check=False, timeout=timeout)
    path = f"{out_prefix}.{pid}.{number}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return dump_events(f.read())
        except (OSError, ValueError):
            time.sleep(0.2)  # not written (completely) yet
    raise RuntimeError(f"callgrind wrote no dump {path} within {timeout}s")


def warm_up(url, name, headers=()):
    for _try in range(WARM_TRIES):
        if load.run_wrk(url, CONNS, 1, headers=headers)["requests"] >= WARM_REQUESTS:
            return
    raise RuntimeError(f"{name} under callgrind did not reach {WARM_REQUESTS} requests a second")


def under_callgrind(processes, workdir, caches=()):
    """Wrap each bench Process's command in callgrind (with the cache and branch simulation for the
    names in caches); returns each one's dump prefix."""
    if not available():
        raise RuntimeError("valgrind (callgrind) is not installed: tools/scripts/bootstrap.sh installs it")
    prefixes = {}
    for name, process in processes.items():
        prefixes[name] = os.path.join(workdir, f"callgrind-{name}")
        process.argv = callgrind_argv(process.argv, prefixes[name], caches=name in caches)
    return prefixes


def load_for(proxy):
    """(port, URL, request headers) of the load a profiled proxy (paths.Proxy) is counted under:
    its target (the static responder, or the same over TLS) and the headers it needs (a policy's Host)."""
    target = paths.TARGETS[proxy.target]
    return target["port"], target["url"], tuple(proxy.headers) + tuple(target.get("headers", ()))


def measure(processes, prefixes, log, short=False, loads=None):
    """Instructions per request of each started Process under callgrind, one at a time.

    Needs the bench's rules installed and the static responder up; the counts do not
    depend on what else runs, so all proxies may start together (valgrind starts slowly).
    loads: {name: (port, url, headers)} (load_for); default the static responder, no header.
    """
    results = {}
    # The static responder: the web server must not be the slow side of the count.
    static = (paths.STATIC_PORT, f"http://{lab.WEB}:{paths.STATIC_PORT}/", ())
    for name, process in processes.items():
        port, url, headers = (loads or {}).get(name, static)
        rules.use("tproxy", port, process.port, process.role_rules)
        warm_up(url, name, headers)
        _dump(process.pid, prefixes[name], 1)
        run = load.run_wrk(url, CONNS, SHORT_RUN_S if short else RUN_S, headers=headers)
        events = _dump(process.pid, prefixes[name], 2)
        # What the proxy does when no request comes (timers, stats, the log's flush), over as long
        # as the run: the count above includes it, spread over the requests of a slow run.
        idle_start = time.monotonic()
        time.sleep(IDLE_S)
        idle = _dump(process.pid, prefixes[name], 3)["Ir"] * run["seconds"] / (time.monotonic() - idle_start)
        instructions = events["Ir"]
        results[name] = {"requests": run["requests"], "errors": run["errors"],
                         "instructions": instructions,
                         "per_request": round(per_request(instructions, run["requests"])),
                         "idle_per_request": round(per_request(idle, run["requests"])),
                         **{key: round(events[event] / run["requests"], 1)
                            for event, key in MISS_EVENTS.items() if event in events}}
        log(f"profile: {name:16} {results[name]['per_request']:8d} instructions/request "
            f"({run['requests']} requests)")
    return results
