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


def fmt(value, spec, none="–"):
    return none if value is None else format(value, spec)


def fmt_spread(row, key, spec, none="–"):
    """A median with the spread of its repeats, `61.2 (58.0–64.1)`; the median alone from one run."""
    value, spread = row.get(key), (row.get("spread") or {}).get(key)
    if value is None or not spread or row.get("repeats", 1) < 2:
        return fmt(value, spec, none)
    return f"{value:{spec}} ({spread[0]:{spec}}–{spread[1]:{spec}})"


def profile_markdown(profiled):
    """Instructions per request (callgrind), each against HAProxy in the same mode."""
    if not profiled:
        return []
    tls = any(p.get("target", "static") != "static" for p in profiled.values())
    lines = ["Instructions per request in the proxy's own code (callgrind, one worker, wrk -c16 "
             "against the static responder" + (", or the same over TLS where the row says so" if tls else "")
             + "; the kernel's share is not counted; deterministic, unlike the CPU times above):", "",
             "| proxy | knobs | instructions/request | × HAProxy (same mode) |",
             "| --- | --- | ---: | ---: |"]
    haproxy = {p["mode"]: p["per_request"] for p in profiled.values() if p["engine"] == "haproxy"}
    for p in profiled.values():
        # HAProxy is counted against the static responder only: no ratio for another load.
        base = haproxy.get(p["mode"]) if p.get("target", "static") == "static" else None
        lines.append(f"| {p['label']} | {', '.join(p['knobs']) or 'none'} | {p['per_request']:,} | "
                     f"{fmt(p['per_request'] / base if base else None, '.1f')} |")
    return lines + [""]


def markdown(results):
    m = results["machine"]
    s = results["settings"]
    lines = [
        f"Bench run {results['date']} on {m.get('cpus')} CPU(s) {m.get('cpu', '?')}"
        f"{' (' + m['virt'] + ')' if m.get('virt') else ''}, {m.get('mem_gib', '?')} GiB, "
        f"kernel {m.get('kernel')}; {m.get('wrk', 'wrk')}, {m.get('haproxy', 'haproxy')}, "
        f"{m.get('nginx', 'nginx')}.",
        f"wrk -t1, {s['duration_s']} s per run, median of {s['repeats']} (lowest–highest in brackets); "
        "proxy CPU = utime+stime "
        "of its process over the run / requests; busy = share of all CPUs in use during the run.",
        "",
    ]
    labels = {name: p["label"] for name, p in results["paths"].items()}
    for target, spec in results["targets"].items():
        lines += [f"**{spec['label']}** (`{spec['url']}`)", "",
                  "| path | conns | req/s | × direct | p50 ms | +p50 ms | p99 ms | proxy CPU µs/req | busy |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        order = list(results["paths"])
        rows = sorted((r for r in results["summary"] if r["target"] == target),
                      key=lambda r: (order.index(r["path"]), r["conns"]))
        for r in rows:
            lines.append(
                f"| {labels[r['path']]} | {r['conns']} | {fmt_spread(r, 'rps', '.0f')} | {fmt(r['x_direct'], '.2f')} | "
                f"{r['p50_ms']:.3f} | {fmt(r['added_p50_ms'], '+.3f')} | {r['p99_ms']:.3f} | "
                f"{fmt_spread(r, 'cpu_us_per_req', '.1f')} | {r['machine_busy']:.0%} |"
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
        lines += ["The lab's container writes its access log to `stdout`: "
                  + ", ".join(results.get("log_carriers") or ["its runtime"]) + " carrying it used "
                  + "; ".join(f"{r['carrier_cpu_us_per_req']:.1f} µs/request ({r['target']}, {r['conns']} conns)"
                              for r in carried) + ", besides Envoy's own CPU in the table.", ""]
    logged = results.get("access_log_lines")
    if logged:
        lines += ["Access log lines written (`stdout`: Envoy's standard output, a file in the bench's "
                  "work directory): " + ", ".join(f"`{n}` {c:,}" for n, c in logged.items()), ""]
    for target, check in (results.get("policy_checks") or {}).items():
        lines += [f"Policy in force on `{check['path']}` ({target}): the allowed Host answered "
                  f"{check['allowed_host']}, a request without it {check['without_it']}.", ""]
    lines += profile_markdown(results.get("profile"))
    control = results.get("control")
    if control:
        lines += ["Control path (ansible-playbook against the lab):", "",
                  "| step | seconds | recap |", "| --- | ---: | --- |"]
        for step in control["steps"]:
            lines.append(f"| {step['name']} | {step['seconds']:.1f} | {step.get('recap', '')} |")
        for name, seconds in control.get("derived", {}).items():
            lines.append(f"| {name} | {seconds:.1f} | sum of the steps above |")
        lines.append("")
        for step in control["steps"]:
            if step.get("slowest") and step["name"].startswith(("site.yml cold", "site.yml warm (changed")):
                lines.append(f"Slowest tasks, {step['name']}: "
                             + "; ".join(f"{name} {sec:.1f} s" for name, sec in step["slowest"]))
        lines.append("")
    return "\n".join(lines)


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


def baseline_problems(summary):
    """Rows where a proxied path beats the direct one (same target, same connection count): the
    baseline is then broken (a stalled web server, a machine busy during the direct runs), and so is
    every ratio to it. Empty when direct is the fastest everywhere it was measured."""
    groups = {}
    for row in summary:
        groups.setdefault((row["target"], row["conns"]), []).append(row)
    problems = []
    for (target, conns), rows in sorted(groups.items()):
        direct = next((r for r in rows if r["path"] == "direct" and r.get("rps")), None)
        if direct is None:
            continue  # a run without the direct path has no ratios to protect
        problems += [f"{target} at {conns} conns: {r['path']} {r['rps']:.0f} req/s is faster than direct "
                     f"{direct['rps']:.0f} req/s" for r in rows if r["path"] != "direct" and (r.get("rps") or 0) > direct["rps"]]
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
