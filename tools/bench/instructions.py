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
# Valgrind translates each code path the first time it runs: the first seconds are slow,
# and a proxy is warm once a one-second run completes this many requests.
WARM_REQUESTS, WARM_TRIES = 100, 15
START_TIMEOUT = 240  # Envoy under valgrind needs ~15 s alone, longer beside the others


def available():
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def callgrind_argv(argv, out_prefix):
    """The proxy's command line under callgrind, its dumps written to out_prefix.PID.N."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_prefix}.%p",
            "--dump-instr=no", "--collect-jumps=no", *argv]


SUMMARY = re.compile(r"^summary:\s+(\d+)", re.MULTILINE)


def dump_instructions(text):
    """The instruction total of one callgrind dump file (its `summary:` line)."""
    match = SUMMARY.search(text)
    if not match:
        raise ValueError("callgrind dump without a summary line")
    return int(match.group(1))


def per_request(instructions, requests):
    if requests <= 0:
        raise ValueError("no request completed during the counted run")
    return instructions / requests


def _dump(pid, out_prefix, number, timeout=60):
    """Ask callgrind to write dump `number` and return its instruction total."""
    subprocess.run(["callgrind_control", "--dump", str(pid)], capture_output=True, text=True,
                   check=False, timeout=timeout)
    path = f"{out_prefix}.{pid}.{number}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return dump_instructions(f.read())
        except (OSError, ValueError):
            time.sleep(0.2)  # not written (completely) yet
    raise RuntimeError(f"callgrind wrote no dump {path} within {timeout}s")


def warm_up(url, name, headers=()):
    for _try in range(WARM_TRIES):
        if load.run_wrk(url, CONNS, 1, headers=headers)["requests"] >= WARM_REQUESTS:
            return
    raise RuntimeError(f"{name} under callgrind did not reach {WARM_REQUESTS} requests a second")


def under_callgrind(processes, workdir):
    """Wrap each bench Process's command in callgrind; returns each one's dump prefix."""
    if not available():
        raise RuntimeError("valgrind (callgrind) is not installed: tools/scripts/bootstrap.sh installs it")
    prefixes = {}
    for name, process in processes.items():
        prefixes[name] = os.path.join(workdir, f"callgrind-{name}")
        process.argv = callgrind_argv(process.argv, prefixes[name])
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
        instructions = _dump(process.pid, prefixes[name], 2)
        results[name] = {"requests": run["requests"], "errors": run["errors"],
                         "instructions": instructions,
                         "per_request": round(per_request(instructions, run["requests"]))}
        log(f"profile: {name:16} {results[name]['per_request']:8d} instructions/request "
            f"({run['requests']} requests)")
    return results
