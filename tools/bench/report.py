"""Results: the summary (medians, ratios to direct), the markdown table, the PNG plot."""

import json
import os

import configs
import load


def summarize(runs):
    """One row per (target, path, conns): medians of the repeats, compared with direct."""
    groups = {}
    for r in runs:
        groups.setdefault((r["target"], r["path"], r["conns"]), []).append(r)
    rows = []
    for (target, path, conns), group in groups.items():
        row = {"target": target, "path": path, "conns": conns, **load.median_run(group)}
        rows.append(row)
    direct = {(r["target"], r["conns"]): r for r in rows if r["path"] == "direct"}
    for row in rows:
        base = direct.get((row["target"], row["conns"]))
        row["x_direct"] = row["rps"] / base["rps"] if base and base["rps"] else None
        row["added_p50_ms"] = row["p50_ms"] - base["p50_ms"] if base else None
    return rows


def user_system(row):
    """`user / system` µs per request of a row (medians), or – when not measured."""
    if row.get("user_us_per_req") is None:
        return "–"
    return f"{row['user_us_per_req']:.1f} / {row['sys_us_per_req']:.1f}"


def fmt(value, spec, none="–"):
    return none if value is None else format(value, spec)


def fmt_spread(row, key, spec, none="–"):
    """A median with the spread of its repeats, `61.2 (58.0–64.1)`; the median alone from one run."""
    value, spread = row.get(key), (row.get("spread") or {}).get(key)
    if value is None or not spread or row.get("repeats", 1) < 2:
        return fmt(value, spec, none)
    return f"{value:{spec}} ({spread[0]:{spec}}–{spread[1]:{spec}})"


def machine_label(m):
    """A machine in a few words: CPU model, CPUs, clock, kernel."""
    return (f"{m.get('cpu', '?')}, {m.get('cpus')} vCPU"
            + (f" at {m['cpu_mhz']} MHz" if m.get("cpu_mhz") else "")
            + f", kernel {m.get('kernel')}")


def machine_details(m):
    """What differs between machines beyond the model: virtualisation, mitigations, counters."""
    parts = []
    if m.get("virt"):
        parts.append(f"virtualisation {m['virt']}")
    spectre = (m.get("mitigations") or {}).get("spectre_v2")
    if spectre:
        parts.append(f"Spectre v2: {spectre}")
    counters = m.get("counters")
    if counters:
        parts.append("hardware performance counters: " + ("yes" if counters.get("pmu") else "none (perf counts "
                     "software events only)") + f", perf_event_paranoid {counters.get('perf_event_paranoid', '?')}")
    return "; ".join(parts)


PER_REQUEST_EVENTS = (("l1i_misses", "L1i misses"), ("ll_code_misses", "LL code misses"),
                      ("l1d_read_misses", "L1d read misses"), ("cond_mispredicts", "cond. branch mispredicts"),
                      ("indirect_mispredicts", "indirect mispredicts"))


def profile_markdown(profiled):
    """Instructions per request (callgrind), each against HAProxy in the same mode, and the simulated
    cache and branch misses per request where they were counted."""
    if not profiled:
        return []
    tls = any(p.get("target", "static") != "static" for p in profiled.values())
    idle = any("idle_per_request" in p for p in profiled.values())
    lines = ["Instructions per request in the proxy's own code (callgrind, one worker, wrk -c16 "
             "against the static responder" + (", or the same over TLS where the row says so" if tls else "")
             + "; the kernel's share is not counted; deterministic, unlike the CPU times above"
             + ("; of which idle: what the proxy ran in the same time without requests (timers, stats, the "
                "log's flush), spread over the run's requests" if idle else "") + "):", "",
             "| proxy | knobs | instructions/request | × HAProxy (same mode) |" + (" of which idle |" if idle else ""),
             "| --- | --- | ---: | ---: |" + (" ---: |" if idle else "")]
    haproxy = {p["mode"]: p["per_request"] for p in profiled.values() if p["engine"] == "haproxy"}
    for p in profiled.values():
        # HAProxy is counted against the static responder only: no ratio for another load.
        base = haproxy.get(p["mode"]) if p.get("target", "static") == "static" else None
        lines.append(f"| {p['label']} | {', '.join(p['knobs']) or 'none'} | {p['per_request']:,} | "
                     f"{fmt(p['per_request'] / base if base else None, '.1f')} |"
                     + (f" {fmt(p.get('idle_per_request'), ',')} |" if idle else ""))
    simulated = {name: p for name, p in profiled.items() if "l1i_misses" in p}
    if simulated:
        lines += ["", "Valgrind's simulated caches (32 KiB first-level code and data caches, a last-level cache "
                  "like the host's) and branch predictor, per request, for the same runs: properties of the code "
                  "and its layout, the same on any machine; what each miss costs is the machine's:", "",
                  "| proxy | instructions | " + " | ".join(label for _k, label in PER_REQUEST_EVENTS) + " |",
                  "| --- | ---: |" + " ---: |" * len(PER_REQUEST_EVENTS)]
        for p in simulated.values():
            lines.append(f"| {p['label']} | {p['per_request']:,} | "
                         + " | ".join(fmt(p.get(key), ',.0f') for key, _label in PER_REQUEST_EVENTS) + " |")
    return lines + [""]


def markdown(results):
    m = results["machine"]
    s = results["settings"]
    details = machine_details(m)
    lines = [
        f"Bench run {results['date']} on {machine_label(m)}, {m.get('mem_gib', '?')} GiB"
        + (f" ({details})" if details else "")
        + f"; {m.get('wrk', 'wrk')}, {m.get('haproxy', 'haproxy')}, {m.get('nginx', 'nginx')}.",
        f"wrk -t1, {s['duration_s']} s per run, median of {s['repeats']} (lowest–highest in brackets); "
        "proxy CPU = utime+stime "
        "of its process over the run / requests; busy = share of all CPUs in use during the run.",
        "",
    ]
    labels = {name: p["label"] for name, p in results["paths"].items()}
    for target, spec in results["targets"].items():
        lines += [f"**{spec['label']}** (`{spec['url']}`)", "",
                  "| path | conns | req/s | × direct | p50 ms | +p50 ms | p99 ms | proxy CPU µs/req | user / system µs "
                  "| context switches/req | busy |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        order = list(results["paths"])
        rows = sorted((r for r in results["summary"] if r["target"] == target),
                      key=lambda r: (order.index(r["path"]), r["conns"]))
        for r in rows:
            lines.append(
                f"| {labels[r['path']]} | {r['conns']} | {fmt_spread(r, 'rps', '.0f')} | {fmt(r['x_direct'], '.2f')} | "
                f"{r['p50_ms']:.3f} | {fmt(r['added_p50_ms'], '+.3f')} | {r['p99_ms']:.3f} | "
                f"{fmt_spread(r, 'cpu_us_per_req', '.1f')} | {user_system(r)} | {fmt(r.get('ctxsw_per_req'), '.2f')} | "
                f"{r['machine_busy']:.0%} |"
                + (f" errors: {r['errors']}" if r["errors"] else ""))
        lines.append("")
    if results.get("proxies"):
        lines += ["Bench proxies (run in the router's netns; Envoy configs are the role's, rendered "
                  "by its `render` entry point with the lab's variables, then edited by the knobs):", ""]
        for name, p in results["proxies"].items():
            knobs = ", ".join(p["knobs"]) or "none"
            extra = ""
            if "access_log" in p:
                extra = f", access log: {p['access_log']}, policy rules: {p.get('policy_rules', 0)}"
                extra += f", sends {', '.join(p['headers'])}" if p.get("headers") else ""
            lines.append(f"- `{name}`: {p['engine']} {p['mode']}, knobs: {knobs}, "
                         f"concurrency: {p['concurrency']}{extra}")
        used = sorted({k for p in [*results["proxies"].values(), *results.get("profile", {}).values()]
                       for k in p["knobs"]})
        if used:
            lines += ["", "Knobs:", ""]
            lines += [f"- `{k}`: {configs.KNOBS[k].__doc__.strip()}" for k in used if k in configs.KNOBS]
        lines.append("")
    carried = [r for r in results["summary"] if r.get("carrier_cpu_us_per_req") is not None]
    if carried:
        lines += ["What carries the lab's container's standard output into its log ("
                  + ", ".join(results.get("log_carriers") or ["its runtime"]) + ", whatever else they do meanwhile; "
                  "the access log only where the row's container logs to `stdout`) used "
                  + "; ".join(f"{r['carrier_cpu_us_per_req']:.1f} µs/request ({r['target']}, {r['conns']} conns)"
                              for r in carried) + ", besides Envoy's own CPU in the table.", ""]
    if results.get("deployments"):
        lines += ["The lab's container was deployed for the bench by `site.yml` (`--limit routers`): "
                  + "; ".join(f"{d['name']} ({d['seconds']:.1f} s, {d['recap']})" for d in results["deployments"])
                  + ".", ""]
    product_log = results.get("product_access_log")
    if product_log:
        lines += [f"The lab's container's access log `{product_log['path']}` held {product_log['lines_before']:,} "
                  f"lines before its runs and {fmt(product_log['lines_after'], ',')} after.", ""]
    logged = results.get("access_log_lines")
    if logged:
        lines += ["Access log lines written by the bench's Envoys (`stdout` or the role's file, each a file in "
                  "the bench's work directory): " + ", ".join(f"`{n}` {c:,}" for n, c in logged.items()), ""]
    for target, check in (results.get("policy_checks") or {}).items():
        lines += [f"Policy in force on `{check['path']}` ({target}): the allowed Host answered "
                  f"{check['allowed_host']}, a request without it {check['without_it']}.", ""]
    lines += profile_markdown(results.get("profile"))
    control = results.get("control")
    if control:
        lines += ["Control path (ansible-playbook against the lab):", "",
                  "| step | seconds | forks | controller peak PSS sum, processes; largest max RSS | recap |",
                  "| --- | ---: | ---: | --- | --- |"]
        lines += [_step_row(step) for step in control["steps"]]
        for name, seconds in control.get("derived", {}).items():
            lines.append(f"| {name} | {seconds:.1f} | | | sum of the steps above |")
        lines.append("")
        lines += control_targets_markdown(control)
        for step in control["steps"]:
            # The first cycle's: the other two name the same tasks.
            if step.get("slowest") and step["name"].startswith(("site.yml cold (1/", "site.yml warm (1/")):
                lines.append(f"Slowest tasks, {step['name']}: "
                             + "; ".join(f"{name} {sec:.1f} s" for name, sec in step["slowest"]))
        lines.append("")
    lines += scale_steps_markdown(results.get("scale"))
    lines += scale_markdown(results)
    return "\n".join(lines)


def _step_row(step):
    memory = (f"{step['peak_pss_mib']:.0f} MiB, {step['peak_processes']} processes; {step['maxrss_mib']:.0f} MiB"
              if "peak_pss_mib" in step else "")
    return (f"| {step['name']} | {step['seconds']:.1f} | {step.get('forks', '')} | {memory} | "
            f"{step.get('recap', '')} |")


def scale_steps_markdown(scale):
    """Every step of the larger labs, in order (the README shows their summary)."""
    if not scale:
        return []
    lines = ["Control path on larger labs (the lab taken down, each larger lab built, measured and removed, "
             "the lab rebuilt and converged):", "",
             "| step | seconds | forks | controller peak PSS sum, processes; largest max RSS | recap |",
             "| --- | ---: | ---: | --- | --- |"]
    lines += [_step_row(step) for step in scale.get("steps", [])]
    lines.append("")
    for step in scale.get("steps", []):
        if step.get("slowest") and step["name"].startswith(("site.yml cold (", "site.yml warm (")) \
                and step.get("layout") != "lab":
            lines.append(f"Slowest tasks, {step['name']}: "
                         + "; ".join(f"{name} {sec:.1f} s" for name, sec in step["slowest"]))
    return lines + [""]


def plot(results, path):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    targets = list(results["targets"])
    order = list(results["paths"])
    metrics = [("rps", "requests/s", False), ("p50_ms", "p50 latency (ms)", True),
               ("cpu_us_per_req", "proxy CPU µs/request", False)]
    fig, axes = plt.subplots(len(targets), len(metrics), figsize=(6 * len(metrics), 4.2 * len(targets)),
                             squeeze=False)
    conns = results["settings"]["conns"]
    for row, target in enumerate(targets):
        present = [p for p in order if any(r["path"] == p and r["target"] == target for r in results["summary"])]
        width = 0.8 / max(len(present), 1)
        for col, (key, title, logy) in enumerate(metrics):
            ax = axes[row][col]
            for i, name in enumerate(present):
                values = []
                for c in conns:
                    r = next((r for r in results["summary"]
                              if r["path"] == name and r["target"] == target and r["conns"] == c), None)
                    values.append(r[key] if r and r[key] is not None else 0)
                # One colour per path in every panel, whichever paths a target has.
                ax.bar([x + i * width for x in range(len(conns))], values, width, label=name,
                       color=plt.get_cmap("tab20" if len(order) > 10 else "tab10")(order.index(name) % 20))
            ax.set_xticks([x + width * (len(present) - 1) / 2 for x in range(len(conns))])
            ax.set_xticklabels([f"c={c}" for c in conns])
            ax.set_title(f"{results['targets'][target]['label']}: {title}")
            if logy:
                ax.set_yscale("log")
            ax.grid(axis="y", alpha=0.3)
        axes[row][0].legend(fontsize=7)
    fig.suptitle(f"tproxy.envoy bench {results['date']} ({results['machine'].get('cpus')} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _rps_range(row):
    """(slowest, fastest) repeat of a row; a row without a spread is its median both ways."""
    low, high = (row.get("spread") or {}).get("rps") or (row["rps"], row["rps"])
    return low, high


def baseline_problems(summary):
    """Rows where a proxied path beats the direct one (same target, same connection count): the
    baseline is then broken (a stalled web server, a machine busy during the direct runs), and so is
    every ratio to it. A path beats direct when even its slowest repeat is faster than direct's
    fastest one: medians that differ by less than the repeats' own spread are noise, not a proxy that
    outruns the server. Empty when direct is the fastest everywhere it was measured."""
    groups = {}
    for row in summary:
        groups.setdefault((row["target"], row["conns"]), []).append(row)
    problems = []
    for (target, conns), rows in sorted(groups.items()):
        direct = next((r for r in rows if r["path"] == "direct" and r.get("rps")), None)
        if direct is None:
            continue  # a run without the direct path has no ratios to protect
        direct_best = _rps_range(direct)[1]
        problems += [f"{target} at {conns} conns: {r['path']} {r['rps']:.0f} req/s (slowest repeat "
                     f"{_rps_range(r)[0]:.0f}) is faster than direct {direct['rps']:.0f} req/s (fastest "
                     f"repeat {direct_best:.0f})"
                     for r in rows if r["path"] != "direct" and r.get("rps") and _rps_range(r)[0] > direct_best]
    return problems


def write_all(results, out):
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, results["date"][:10])
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write(markdown(results) + "\n")
    plot(results, stem + ".png")


# ---------------------------------------------------------------- the control path

KIND_LABELS = {"warm": "warm `site.yml` (changed=0)", "cold": "cold converge: `site.yml` after `teardown.yml`",
               "teardown": "`teardown.yml`"}


def target_met(entry):
    """Whether a median meets its target (seconds, at most)."""
    return entry["median"] <= entry["target"]


def control_targets_markdown(control):
    """The control path's medians against their targets (control.summarize), as a table."""
    summary = (control or {}).get("summary") or {}
    if not summary:
        return []
    runs = max(entry["runs"] for entry in summary.values())
    lines = [f"| playbook on the lab | median of {runs} | lowest–highest | target | met |",
             "| --- | ---: | ---: | ---: | --- |"]
    for kind, label in KIND_LABELS.items():
        entry = summary.get(kind)
        if not entry:
            continue
        lines.append(f"| {label} | {entry['median']:.1f} s | {entry['low']:.1f}–{entry['high']:.1f} s | "
                     f"≤ {entry['target']:g} s | {'yes' if target_met(entry) else '**no**'} |")
    return lines + [""]


def _scale_steps(scale, layout):
    return [s for s in (scale or {}).get("steps", []) if s.get("layout") == layout and s["rc"] == 0]


def _peak(steps, key, forks=None):
    """The highest `key` over the timed steps (run with `forks`, the configured value, when given)."""
    values = [s[key] for s in steps if s.get("kind") and s.get(key) and (forks is None or s.get("forks") == forks)]
    return max(values) if values else None


def scale_rows(results):
    """One row per lab: {label, hosts, counts, cold, teardown, warm: {forks: s}, peak_pss_mib,
    maxrss_mib}; the regular lab's times are the control path's medians."""
    control, scale = results.get("control") or {}, results.get("scale") or {}
    if not scale.get("layouts"):
        return []
    forks = scale.get("forks")
    summary = control.get("summary") or {}
    rows = []
    if summary:
        steps = [s for s in control.get("steps", []) if s["rc"] == 0]
        rows.append({"label": "the lab: 1 router, 1 web server, 1 client (medians)", "base": True,
                     "hosts": max((s.get("hosts") or 0 for s in steps), default=3),
                     "counts": {"routers": 1, "webservers": 1, "clients": 1},
                     "cold": summary.get("cold", {}).get("median"),
                     "teardown": summary.get("teardown", {}).get("median"),
                     "warm": {forks: summary["warm"]["median"]} if "warm" in summary else {},
                     "peak_pss_mib": _peak(steps, "peak_pss_mib"), "maxrss_mib": _peak(steps, "maxrss_mib"),
                     "memory": _memory(steps)})
    for layout in scale["layouts"]:
        steps = _scale_steps(scale, layout["key"])
        by_kind = {kind: [s for s in steps if s.get("kind") == kind] for kind in ("cold", "warm", "teardown")}
        rows.append({"label": layout["label"], "hosts": layout["hosts"], "counts": layout["counts"],
                     "cold": next((s["seconds"] for s in by_kind["cold"]), None),
                     "teardown": next((s["seconds"] for s in by_kind["teardown"]), None),
                     "warm": {s["forks"]: s["seconds"] for s in by_kind["warm"]},
                     "peak_pss_mib": _peak(steps, "peak_pss_mib", forks), "maxrss_mib": _peak(steps, "maxrss_mib", forks),
                     "warm_pss_mib": {s["forks"]: s.get("peak_pss_mib") for s in by_kind["warm"]},
                     "memory": _memory(steps)})
    return rows


def _memory(steps):
    """[(processes, PSS sum MiB)] of each timed step: the controller's memory against its processes."""
    return [(s["peak_processes"], s["peak_pss_mib"]) for s in steps
            if s.get("kind") and s.get("peak_pss_mib") and s.get("peak_processes")]


def _secs(value):
    return "–" if value is None else f"{value:.1f} s"


def _mib(value):
    return "–" if value is None else f"{value:.0f} MiB"


def scale_markdown(results):
    """The playbooks' wall time and the controller's memory against the lab's size, with what
    each added client or router costs and what forks did."""
    rows = scale_rows(results)
    if not rows:
        return []
    forks = results["scale"].get("forks")
    forks_seen = sorted({f for row in rows for f in row["warm"]}, key=lambda f: (f != forks, f))
    warm_heads = [f"warm, forks {f}" for f in forks_seen]
    lines = [f"| lab | hosts | `site.yml` cold | {' | '.join(warm_heads)} | `teardown.yml` | "
             f"controller peak (PSS sum), forks {forks} | largest process (max RSS) |",
             "| --- | ---: | ---: | " + "---: | " * len(warm_heads) + "---: | ---: | ---: |"]
    for row in rows:
        warm = " | ".join(_secs(row["warm"].get(f)) for f in forks_seen)
        lines.append(f"| {row['label']} | {row['hosts']} | {_secs(row['cold'])} | {warm} | {_secs(row['teardown'])} | "
                     f"{_mib(row['peak_pss_mib'])} | {_mib(row['maxrss_mib'])} |")
    lines.append("")
    sentences = [s for s in (_per_host_sentence(rows, forks), _forks_sentence(rows, forks), _memory_sentence(rows))
                 if s]
    return lines + ([" ".join(sentences), ""] if sentences else [])


GROUP_WORDS = {"routers": ("router", "routers"), "webservers": ("web server", "web servers"),
               "clients": ("client", "clients")}


def _per_host_sentence(rows, forks):
    """What one more host of a group adds, from the lab's row to each larger lab differing in one group."""
    base = rows[0] if rows[0].get("base") else None
    if not base:
        return None
    parts = []
    for row in rows[1:]:
        grown = [g for g in row["counts"] if row["counts"][g] != base["counts"].get(g)]
        if len(grown) != 1:
            continue
        group = grown[0]
        added = row["counts"][group] - base["counts"][group]
        deltas = []
        for name, key in (("warm `site.yml`", "warm"), ("cold", "cold"), ("`teardown.yml`", "teardown")):
            new, old = (row["warm"].get(forks), base["warm"].get(forks)) if key == "warm" else (row[key], base[key])
            if new is not None and old is not None:
                deltas.append(f"{(new - old) / added:+.2f} s to {name}")
        if deltas:
            parts.append(f"each added {GROUP_WORDS[group][0]} {', '.join(deltas)} "
                         f"(over {added} {GROUP_WORDS[group][1 if added > 1 else 0]})")
    if not parts:
        return None
    return (f"Against the lab ({base['hosts']} hosts, medians; the larger labs ran once each, forks "
            f"{forks}): " + "; ".join(parts) + ".")


def _forks_sentence(rows, forks):
    """forks: how many hosts Ansible works on at once, and what more forks did where measured."""
    sentences = []
    for row in rows:
        others = [f for f in row["warm"] if f != forks]
        if forks not in row["warm"] or not others:
            continue
        other = others[0]
        clients = row["counts"].get("clients", 1)
        pss = row.get("warm_pss_mib") or {}
        sentences.append(
            f"`forks = {forks}` (ansible.cfg): Ansible runs each task on at most {forks} hosts at a time, one "
            f"worker process each, so on the {row['hosts']} hosts of {row['label']} a task on every host (the "
            f"first play) takes at least {-(-row['hosts'] // forks)} rounds and one on the {clients} clients "
            f"{-(-clients // forks)}; with `forks = {other}` warm `site.yml` took {row['warm'][other]:.1f} s "
            f"against {row['warm'][forks]:.1f} s"
            + (f", the controller's peak {_mib(pss[other])} against {_mib(pss[forks])}"
               if pss.get(other) and pss.get(forks) else "") + ".")
    return " ".join(sentences) or None


def memory_per_process(points):
    """(MiB per process, MiB at no process) of the least-squares line through [(processes, MiB)];
    None with fewer than two process counts."""
    if len({n for n, _m in points}) < 2:
        return None
    mean_n = sum(n for n, _m in points) / len(points)
    mean_m = sum(m for _n, m in points) / len(points)
    slope = (sum((n - mean_n) * (m - mean_m) for n, m in points)
             / sum((n - mean_n) ** 2 for n, _m in points))
    return slope, mean_m - slope * mean_n


def _memory_sentence(rows):
    """The controller's memory follows its processes (ansible-playbook and at most forks workers)."""
    points = sorted(point for row in rows for point in row.get("memory") or ())
    fit = memory_per_process(points)
    if not fit:
        return None
    (n_low, m_low), (n_high, m_high) = min(points), max(points)
    return (f"The controller's memory follows the processes running at once (`ansible-playbook` and its "
            f"workers: at most forks, and no more than the play's hosts), not the inventory's size: from "
            f"{m_low:.0f} MiB with {n_low} processes to {m_high:.0f} MiB with {n_high}, about {fit[0]:.0f} MiB "
            "per worker (least squares over the timed runs above).")
