#!/usr/bin/env python
"""The README's bench section, generated from the newest results file (never typed in).

    tools/bench/readme.py --update README.md   rewrite the part between the markers
    tools/bench/readme.py --check README.md    exit 1 if it differs from the newest results (make docs-check)

Each full run writes one set of files named by its date (results/YYYY-MM-DD.json, .md, .png); the
newest by name is the latest. run.py calls update() after each full run, so the README always shows
the latest results and links that run's own files.
"""

import argparse
import json
import os
import re
import sys

import report

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
RESULTS_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")


def newest_results(directory=RESULTS):
    """The newest run's JSON file (names are dates, so the newest sorts last)."""
    names = sorted(name for name in os.listdir(directory) if RESULTS_FILE.match(name))
    if not names:
        raise FileNotFoundError(f"no results file (YYYY-MM-DD.json) in {directory}")
    return os.path.join(directory, names[-1])


def run_files(results):
    """The repository paths of the run's own files, by extension."""
    stem = (results.get("date") or "YYYY-MM-DD")[:10]
    return {ext: f"tools/bench/results/{stem}.{ext}" for ext in ("json", "md", "png")}


BEGIN, END = "<!-- BEGIN bench: latest -->", "<!-- END bench: latest -->"
README_PATHS = ("direct", "envoy-tproxy", "envoy-product", "envoy-redirect", "haproxy-http", "envoy-tcp", "haproxy-tcp")
# The lab's container, as deployed and with one default changed (static nginx, 64 connections).
DEPLOYED_PATHS = ("envoy-product", "product-stdout", "product-log-off", "product-1-worker")
# Within this share of the bench's role row, the deployed container's CPU per request is "the same".
DEPLOYED_TOLERANCE = 0.10


def all_results(directory=RESULTS):
    """Every run's results, oldest first."""
    out = []
    for name in sorted(n for n in os.listdir(directory) if RESULTS_FILE.match(n)):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            out.append(json.load(f))
    return out


def _row(summary, path, conns, target="static"):
    return next((r for r in summary if r["target"] == target and r["path"] == path
                 and r["conns"] == conns), None)


# Issue 16's costs: (label, data path, target, connections, profiled proxy or None).
FEATURE_ROWS = (
    ("role defaults: access log on (`{access_log}`), no policy", "envoy-tproxy", "static", 64, "envoy-role"),
    ("`router_access_log: off`", "envoy-log-off", "static", 64, "envoy-log-off"),
    ("`router_policy` of 100 `hosts` rules, Host matching the last (default deny), access log on",
     "envoy-policy", "static", 64, "envoy-policy"),
    ("L4 port (`router_intercept_l4_ports`), HTTPS keep-alive", "envoy-tcp", "tls", 64, "envoy-tcp-tls"),
    ("TLS port (`router_intercept_tls_ports`: TLS inspector, SNI), HTTPS keep-alive", "envoy-tls", "tls", 64,
     "envoy-tls"),
    ("L4 port, HTTPS with a new connection per request", "envoy-tcp", "tls-new", 16, None),
    ("TLS port, HTTPS with a new connection per request", "envoy-tls", "tls-new", 16, None),
)


def feature_costs(results):
    """Markdown: what the access log, a policy of 100 host rules and the TLS port cost (issue 16),
    and one sentence on the defaults against the access log off. Empty without those paths."""
    summary, profiled = results["summary"], results.get("profile") or {}
    if not any(_row(summary, path, conns, target) for _l, path, target, conns, _c in FEATURE_ROWS[1:]):
        return []  # a run from before these paths: its role config had no access log at all
    rows = []
    for label, path, target, conns, counted in FEATURE_ROWS:
        row = _row(summary, path, conns, target)
        if not row:
            continue
        instr = profiled.get(counted, {}).get("per_request") if counted else None
        label = label.format(access_log=default_access_log(results))
        rows.append(f"| {label} | {target} | {conns} | {report.fmt_spread(row, 'rps', '.0f')} | "
                    f"{report.fmt(row['x_direct'], '.2f')} | {report.fmt_spread(row, 'cpu_us_per_req', '.1f')} | "
                    f"{report.fmt(instr, ',')} |")
    lines = ["What the access log, a policy and the TLS port cost (Envoy as the role configures it, a process "
             "here: its log is a file in the bench's work directory, without the container runtime's share; "
             f"targets as in `{run_files(results)['md']}`: static nginx, the same over TLS):", "",
             "| configuration | target | conns | req/s | × direct | proxy CPU µs/request | instructions/request |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |", *rows, ""]
    sentence = " ".join(filter(None, (defaults_sentence(results), carrier_sentence(results))))
    return lines + ([sentence, ""] if sentence else [])


def default_access_log(results):
    """The role's default access log as the run measured it (its bench Envoy's, else `stdout`)."""
    return (results.get("proxies", {}).get("envoy-role") or {}).get("access_log", "stdout")


def carrier_sentence(results):
    """What the lab's container runtime spent carrying the stdout log (path b', httpbin), if measured."""
    if _row(results["summary"], "envoy-product", 64):
        return None  # the deployed container's own table says it, on the static responder
    rows = sorted((r for r in results["summary"] if r["path"] == "envoy-product"
                   and r.get("carrier_cpu_us_per_req") is not None), key=lambda r: -r["conns"])
    if not rows:
        return None
    row = rows[0]
    return (f"In the lab's own container (path b', httpbin, {row['conns']} connections) "
            f"{' and '.join(results.get('log_carriers') or ['the container runtime'])} spent a further "
            f"{row['carrier_cpu_us_per_req']:.1f} µs per request carrying that log (Envoy itself "
            f"{report.fmt(row['cpu_us_per_req'], '.1f')} µs there), part of which is their own "
            "background work.")


def defaults_sentence(results):
    """The defaults' cost against the access log off, from the measured rows (None if missing)."""
    on, off = _row(results["summary"], "envoy-tproxy", 64), _row(results["summary"], "envoy-log-off", 64)
    profiled = results.get("profile") or {}
    i_on = profiled.get("envoy-role", {}).get("per_request")
    i_off = profiled.get("envoy-log-off", {}).get("per_request")
    if not (on and off and on["cpu_us_per_req"] and off["cpu_us_per_req"] and i_on and i_off):
        return None
    sentence = (f"The defaults (access log on, to `{default_access_log(results)}`; no policy) cost {on['cpu_us_per_req']:.1f} µs of "
                f"Envoy's CPU and {i_on:,} instructions per HTTP request, against {off['cpu_us_per_req']:.1f} µs "
                f"and {i_off:,} with `router_access_log: off`: the access log adds "
                f"{on['cpu_us_per_req'] - off['cpu_us_per_req']:+.1f} µs ({on['cpu_us_per_req'] / off['cpu_us_per_req'] - 1:+.0%}) "
                f"and {i_on - i_off:+,} instructions ({i_on / i_off - 1:+.0%}) per request "
                f"(static nginx, 64 connections).")
    spread_on, spread_off = (on.get("spread") or {}).get("cpu_us_per_req"), (off.get("spread") or {}).get("cpu_us_per_req")
    if spread_on and spread_off and spread_on[0] <= spread_off[1] and spread_off[0] <= spread_on[1]:
        sentence += (" The two CPU times' ranges over the repeats overlap: that difference is within this "
                     "machine's noise, the instruction count's is not.")
    return sentence


def deployed_section(results):
    """Markdown: the lab's container as site.yml deploys it, and with one default changed, against
    the bench's process running the role's configuration (row b)."""
    summary, profiled = results["summary"], results.get("profile") or {}
    rows = [(path, _row(summary, path, 64)) for path in DEPLOYED_PATHS]
    rows = [(path, row) for path, row in rows if row]
    if not rows:
        return []
    m = results["machine"]
    lines = [f"The lab router's own container, deployed by `site.yml` with the role's defaults, and the same with "
             f"one default changed (`tools/bench/deployed.py`; static nginx, 64 connections; CPU on "
             f"{report.machine_label(m)}; the carrier is what the container runtime spends taking the container's "
             "standard output into its log, containerd-shim and the router's dockerd, whatever else they do "
             "meanwhile):", "",
             "| the lab's container | × direct | Envoy CPU µs/request | user / system µs | context switches/request | "
             "carrier CPU µs/request |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for path, row in rows:
        info = results["paths"][path]
        label = ("as deployed: the role's defaults" if path == "envoy-product"
                 else ", ".join(f"`{k}: {v}`" for k, v in info.get("deployment", {}).items()))
        lines.append(f"| {label} | {report.fmt(row['x_direct'], '.2f')} | "
                     f"{report.fmt_spread(row, 'cpu_us_per_req', '.1f')} | {report.user_system(row)} | "
                     f"{report.fmt(row.get('ctxsw_per_req'), '.2f')} | {report.fmt(row.get('carrier_cpu_us_per_req'), '.1f')} |")
    lines.append("")
    product, bench = _row(summary, "envoy-product", 64), _row(summary, "envoy-tproxy", 64)
    if product and bench and product["cpu_us_per_req"] and bench["cpu_us_per_req"]:
        ratio = product["cpu_us_per_req"] / bench["cpu_us_per_req"]
        within = abs(ratio - 1) <= DEPLOYED_TOLERANCE
        lines += [f"The deployed container's Envoy used {product['cpu_us_per_req']:.1f} µs per request against "
                  f"{bench['cpu_us_per_req']:.1f} µs for the bench's process running the role's configuration (b): "
                  f"{ratio - 1:+.0%}, {'within' if within else '**not** within'} "
                  f"{DEPLOYED_TOLERANCE:.0%}"
                  + (f"; instructions per request of that configuration (one worker, callgrind): "
                     f"{profiled['envoy-role']['per_request']:,}" if profiled.get("envoy-role") else "") + ".", ""]
    return lines


def _machine_row(results):
    summary, profiled = results["summary"], results.get("profile") or {}
    cells = [results["date"][:10], report.machine_label(results["machine"])]
    for path in ("envoy-tproxy", "envoy-tcp", "haproxy-http"):
        row = _row(summary, path, 64)
        cells.append(report.fmt(row["x_direct"] if row else None, ".2f"))
        if path != "haproxy-http":
            cells.append(report.fmt(row["cpu_us_per_req"] if row else None, ".1f"))
    for name in ("envoy-role", "envoy-tcp"):
        cells.append(report.fmt(profiled.get(name, {}).get("per_request"), ","))
    return "| " + " | ".join(cells) + " |"


def machines_section(history):
    """Markdown: every committed run, with its machine: the ratios and instruction counts travel,
    the CPU times are the machine's."""
    runs = [r for r in history if _row(r["summary"], "envoy-tproxy", 64)]
    if len(runs) < 2:
        return []
    lines = ["Every full run in `tools/bench/results/`, by machine (static nginx, 64 connections; "
             "instructions per request under callgrind, one worker):", "",
             "| run | machine | Envoy HTTP (b) × direct | µs/request | Envoy L4 (e) × direct | µs/request | "
             "HAProxy HTTP (d) × direct | instructions (b) | instructions (e) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [_machine_row(r) for r in runs]
    by_cpu = {}
    for r in runs:
        row = _row(r["summary"], "envoy-tproxy", 64)
        by_cpu.setdefault(r["machine"].get("cpu", "?"), []).append(row["x_direct"])
    spread = [f"{cpu}: {min(v):.2f}–{max(v):.2f}× over {len(v)} runs" for cpu, v in by_cpu.items() if len(v) > 1]
    if spread:
        lines += ["", "Envoy HTTP (b) × direct per machine: " + "; ".join(spread) + "."]
    return lines + [""] + machine_pair(runs)


# (data path, profiled proxy): the paths whose CPU per request and instructions per request are compared
# between machines.
PAIRED = (("envoy-tproxy", "envoy-role", "Envoy HTTP (b)"), ("haproxy-http", "haproxy-http", "HAProxy HTTP (d)"),
          ("envoy-tcp", "envoy-tcp", "Envoy L4 (e)"), ("haproxy-tcp", "haproxy-tcp", "HAProxy TCP (e')"))


def machine_pair(runs):
    """Markdown: the newest run of the latest machine against the newest run of another CPU model: how
    much more (or less) CPU each path costs there, against the user-space instructions it runs."""
    newest = {}
    for r in runs:
        newest[r["machine"].get("cpu", "?")] = r
    if len(newest) < 2:
        return []
    latest = runs[-1]
    other = next(r for cpu, r in reversed(newest.items()) if cpu != latest["machine"].get("cpu", "?"))
    rows = []
    for path, counted, label in PAIRED:
        a, b = _row(latest["summary"], path, 64), _row(other["summary"], path, 64)
        instr = ((latest.get("profile") or {}).get(counted) or {}).get("per_request")
        if not (a and b and a["cpu_us_per_req"] and b["cpu_us_per_req"] and instr):
            continue
        delta = b["cpu_us_per_req"] - a["cpu_us_per_req"]
        rows.append(f"| {label} | {instr:,} | {a['cpu_us_per_req']:.1f} | {b['cpu_us_per_req']:.1f} | {delta:+.1f} | "
                    f"{delta / instr * 1e3:+.2f} |")
    if not rows:
        return []
    name_a, name_b = latest["machine"].get("cpu", "?"), other["machine"].get("cpu", "?")
    return [f"The same paths on two machines (static nginx, 64 connections; {name_a}: {latest['date'][:10]}, "
            f"{name_b}: {other['date'][:10]}): the difference in CPU per request against the user-space "
            "instructions each path runs per request (this run's count):", "",
            f"| path | instructions/request | µs on {name_a} | µs on {name_b} | difference µs | ns per instruction |",
            "| --- | ---: | ---: | ---: | ---: | ---: |", *rows, ""]


def _with_scale(results, history):
    """The larger labs' results: this run's, else the newest run that measured them (`make bench-scale`)."""
    if (results.get("scale") or {}).get("layouts"):
        return results
    return next((r for r in reversed(history) if (r.get("scale") or {}).get("layouts")), None)


def section(results, history=None):
    """Markdown: the static-responder comparison at 64 and 1 connections, and the profile."""
    m = results["machine"]
    summary = results["summary"]
    history = history if history is not None else [results]
    reps = max((r.get("repeats", 1) for r in summary if r.get("spread")), default=1)
    details = report.machine_details(m)
    lines = [f"Latest run: {results['date']}, {report.machine_label(m)}"
             + (f" ({details})" if details else "") + "; "
             "load generator, web server and proxy share those CPUs, so compare ratios, CPU "
             "and instructions per request, not absolute rates."
             + (f" Rates and CPU times are medians of {reps} repeats (lowest–highest in brackets); "
                "instruction counts are one count each (they repeat to about 1 %)." if reps > 1 else ""), "",
             "| path (static nginx) | req/s at 64 conns | × direct | proxy CPU µs/request | "
             "added p50 at 1 conn |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for path in README_PATHS:
        row64, row1 = _row(summary, path, 64), _row(summary, path, 1)
        if not row64:
            continue
        label = results["paths"][path]["label"]
        added = row1["added_p50_ms"] if row1 and path != "direct" else None
        lines.append(f"| {label} | {report.fmt_spread(row64, 'rps', '.0f')} | {report.fmt(row64['x_direct'], '.2f')} | "
                     f"{report.fmt_spread(row64, 'cpu_us_per_req', '.1f')} | "
                     f"{report.fmt(added, '+.3f')}{' ms' if added is not None else ''} |")
    lines.append("")
    lines += deployed_section(results)
    lines += feature_costs(results)
    lines += report.profile_markdown(results.get("profile"))
    lines += machines_section(history)
    lines += playbooks_section(results, _with_scale(results, history))
    files = run_files(results)
    lines += ["", f"This run's files: `{files['json']}`, `{files['md']}`.", "",
              f"![throughput and latency per path]({files['png']})"]
    return "\n".join(lines).rstrip("\n")


def playbooks_section(results, scaled=None):
    """The control path: medians against their targets, then the larger labs (scaled: the run that
    measured them, this one or an earlier one), or, for a run from before the medians, its one time
    per playbook."""
    control = results.get("control") or {}
    targets = report.control_targets_markdown(control)
    if targets:
        lines = ["The playbooks on the lab (3 hosts; `teardown.yml` then `site.yml`, then `site.yml` "
                 "again, three cycles; targets from issue 18):", "", *targets]
        scale = report.scale_markdown(scaled) if scaled else []
        if scale:
            lines += [("" if scaled is results else f"From the run of {scaled['date'][:10]} (`make bench-scale`; "
                       f"{report.machine_label(scaled['machine'])}): ")
                      + "The same playbooks on larger labs (`LAB_INVENTORY`: the lab inventory with more hosts, "
                      "`tools/bench/scale.py`; one run each). Memory is the controller's: the highest sum of PSS "
                      "of `ansible-playbook` and its workers (sampled), and the largest single process's max RSS. "
                      "The hosts share the controller's CPUs here, so the times include the modules' own work "
                      "on every host, which real hosts would do on theirs:", "", *scale]
        while lines[-1] == "":
            lines.pop()
        return lines
    steps = {s["name"]: s["seconds"] for s in control.get("steps", [])}
    wanted = [("site.yml cold", "`site.yml` cold"), ("site.yml warm (changed=0 expected)", "warm"),
              ("teardown.yml", "`teardown.yml`")]
    if all(name in steps for name, _label in wanted):
        return ["Playbooks on the lab: " + ", ".join(f"{label} {steps[name]:.1f} s"
                                                     for name, label in wanted) + "."]
    return []


def replace(text, body):
    if BEGIN not in text or END not in text:
        raise ValueError(f"the README has no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{body}\n{END}{tail}"


def update(readme, results, directory=RESULTS):
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    new = replace(text, section(results, all_results(directory)))
    if new != text:
        with open(readme, "w", encoding="utf-8") as f:
            f.write(new)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--update", metavar="README")
    mode.add_argument("--check", metavar="README")
    args = ap.parse_args(argv)
    latest = newest_results()
    with open(latest, encoding="utf-8") as f:
        results = json.load(f)
    if args.update:
        update(args.update, results)
        return 0
    with open(args.check, encoding="utf-8") as f:
        text = f.read()
    if replace(text, section(results, all_results())) != text:
        print(f"{args.check}: the bench section differs from {latest}; run tools/bench/readme.py --update "
              f"{args.check}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
