"""One load run: wrk in the client's netns, proxy CPU counters around it."""

import json
import os
import statistics
import time

import lab
import procs

LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", "wrk_report.lua")
MARKER = "BENCH-JSON "


def parse_wrk(stdout):
    """The JSON line our Lua hook prints; raises if wrk printed none (it did not finish)."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise RuntimeError(f"wrk printed no summary:\n{stdout[-1500:]}")


def machine_busy():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_over(seconds):
    busy0, total0 = machine_busy()
    time.sleep(seconds)
    busy1, total1 = machine_busy()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_quiet(threshold, max_wait):
    """Wait (at most max_wait s) until the machine is nearly idle before a run.

    The machine may be shared: a run that starts while something else is busy measures
    that other load too. Returns (busy share just before the run, seconds waited).
    """
    start = time.monotonic()
    busy = busy_over(0.2)
    while busy > threshold and time.monotonic() - start < max_wait:
        busy = busy_over(0.5)
    return round(busy, 3), round(time.monotonic() - start, 1)


def wrk_argv(url, conns, duration, threads=1, headers=()):
    """wrk's command line (in the client's netns); headers: "Name: value" strings sent with each request."""
    extra = [arg for header in headers for arg in ("-H", header)]
    return lab.in_netns("client", ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s",
                                   "--timeout", "5s", *extra, "-s", LUA, url])


def run_wrk(url, conns, duration, pids=(), threads=1, headers=()):
    """Run wrk for `duration` seconds; return its summary plus each PID's CPU seconds used."""
    argv = wrk_argv(url, conns, duration, threads, headers)
    before = {pid: (procs.cpu_split(pid), procs.context_switches(pid)) for pid in pids}
    busy0, total0 = machine_busy()
    res = lab.run(argv, check=False, timeout=duration + 30)
    busy1, total1 = machine_busy()
    after = {pid: (procs.cpu_split(pid), procs.context_switches(pid)) for pid in pids}
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stderr.strip() or res.stdout[-500:]}")
    summary = parse_wrk(res.stdout)
    seconds = summary["duration_us"] / 1e6
    errors = summary["errors"]
    return {
        "requests": summary["requests"],
        "seconds": seconds,
        "rps": summary["requests"] / seconds if seconds else 0.0,
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "errors": sum(errors.values()),
        "error_detail": errors,
        "cpu_s": {str(pid): round(sum(after[pid][0]) - sum(before[pid][0]), 3) for pid in pids},
        # The same split into user and system time, and the context switches of all its threads.
        "user_s": {str(pid): round(after[pid][0][0] - before[pid][0][0], 3) for pid in pids},
        "sys_s": {str(pid): round(after[pid][0][1] - before[pid][0][1], 3) for pid in pids},
        "ctxsw": {str(pid): after[pid][1] - before[pid][1] for pid in pids},
        "machine_busy": round((busy1 - busy0) / max(total1 - total0, 1), 3),
    }


def median_run(runs):
    """The median of repeated runs, per metric (so p99 is the median of the p99s)."""
    def med(key):
        return statistics.median(r[key] for r in runs)
    out = {key: med(key) for key in ("rps", "p50_ms", "p99_ms", "machine_busy")}
    out["errors"] = sum(r["errors"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    per_req = [r["cpu_us_per_req"] for r in runs if r.get("cpu_us_per_req") is not None]
    out["cpu_us_per_req"] = statistics.median(per_req) if per_req else None
    for key in ("user_us_per_req", "sys_us_per_req", "ctxsw_per_req"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = statistics.median(values)
    carried = [r["carrier_cpu_us_per_req"] for r in runs if r.get("carrier_cpu_us_per_req") is not None]
    if carried:  # the lab's container only: its log's way through containerd-shim and dockerd
        out["carrier_cpu_us_per_req"] = statistics.median(carried)
    out["repeats"] = len(runs)
    # The spread of the repeats behind each median: [min, max].
    out["spread"] = {key: [min(values), max(values)] for key, values in (
        ("rps", [r["rps"] for r in runs]), ("p50_ms", [r["p50_ms"] for r in runs]),
        ("cpu_us_per_req", per_req)) if values}
    return out
