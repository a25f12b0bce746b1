"""`make monitoring-check`: the shipped alert rules and dashboard, proven with Prometheus's own promtool.

1. `promtool check rules` on roles/monitoring/files/tproxy-envoy.rules.yml.
2. `promtool test rules` on the cases of rules_cases.yml (each expected alert completed with its rule's
   static description and runbook), and every alert has a case where it fires and one where it must not.
3. Every alert has a runbook section in docs/monitoring.md (a heading named after it).
4. Every query of the Grafana dashboard parses: written, with Grafana's variables given values, as
   recording rules that `promtool check rules` reads; each names at least one metric.
Whether the names are ones the router exports is checked against a live router by
tests/topology/test_monitoring.py.
"""

import json
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import promql  # noqa: E402  pylint: disable=wrong-import-position

RULES = ROOT / "roles/monitoring/files/tproxy-envoy.rules.yml"
DASHBOARD = ROOT / "roles/monitoring/files/tproxy-envoy.dashboard.json"
RUNBOOK = ROOT / "docs/monitoring.md"
CASES = HERE / "rules_cases.yml"
# What Grafana puts in place of the dashboard's variables.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": "tproxy-envoy", "$instance": ".+"}


def alerts():
    return {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule}


def dashboard_queries():
    """(panel title, expression) of every query of the dashboard, variables included."""
    board = json.loads(DASHBOARD.read_text())
    result = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            result.append((panel["title"], target["expr"]))
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            match = re.match(r"^label_values\((.*),\s*[A-Za-z_]+\)$", query["query"])
            if match:
                result.append(("variable " + variable["name"], match.group(1)))
    return result


def with_values(expr):
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def promtool(*args, cwd=None):
    proc = subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def check_rules():
    code, out = promtool("check", "rules", str(RULES))
    return [] if code == 0 else ["promtool check rules %s:\n%s" % (RULES, out)]


def unit_cases(rules):
    """The cases of rules_cases.yml, completed, and the problems of their coverage."""
    cases = yaml.safe_load(CASES.read_text())
    problems = []
    fires, silent = set(), set()
    for test in cases["tests"]:
        for check in test.get("alert_rule_test", []):
            name = check["alertname"]
            if name not in rules:
                problems.append("rules_cases.yml: %r is not an alert of %s" % (name, RULES.name))
                continue
            (fires if check.get("exp_alerts") else silent).add(name)
            for expected in check.get("exp_alerts") or []:
                annotations = expected.setdefault("exp_annotations", {})
                for key, value in rules[name]["annotations"].items():
                    if key != "summary":
                        annotations[key] = value
    for name in sorted(rules):
        if name not in fires:
            problems.append("rules_cases.yml: no case in which %s fires" % name)
        if name not in silent:
            problems.append("rules_cases.yml: no case in which %s must not fire" % name)
    cases["rule_files"] = [str(RULES)]
    return cases, problems


def test_rules(cases):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "rules_test.yml"
        path.write_text(yaml.safe_dump(cases, sort_keys=False))
        code, out = promtool("test", "rules", str(path))
    return [] if code == 0 else ["promtool test rules:\n" + out]


def runbook_sections(rules):
    headings = {line.lstrip("#").strip().strip("`") for line in RUNBOOK.read_text().splitlines()
                if line.startswith("### ")}
    problems = ["%s: no runbook section '### %s'" % (RUNBOOK.relative_to(ROOT), name)
                for name in sorted(rules) if name not in headings]
    for name, rule in sorted(rules.items()):
        anchor = "docs/monitoring.md#" + name.lower()
        if rule["annotations"].get("runbook") != anchor:
            problems.append("%s: annotation runbook must be %r" % (name, anchor))
        for key in ("summary", "description"):
            if not rule["annotations"].get(key):
                problems.append("%s: no %s annotation" % (name, key))
    return problems


def check_dashboard():
    problems = []
    queries = dashboard_queries()
    recording = []
    for index, (title, expr) in enumerate(queries):
        try:
            names = promql.selectors(expr)
        except promql.PromQLError as error:
            problems.append("dashboard panel %r: %s" % (title, error))
            continue
        if not names:
            problems.append("dashboard panel %r reads no metric: %s" % (title, expr))
        recording.append({"record": "tproxy_envoy_dashboard:query_%d" % index, "expr": with_values(expr)})
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "dashboard_queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}, sort_keys=False))
        code, out = promtool("check", "rules", str(path))
    if code != 0:
        problems.append("the dashboard's queries do not all parse (promtool check rules):\n" + out)
    return problems, len(queries)


def main():
    rules = alerts()
    cases, problems = unit_cases(rules)
    problems += check_rules()
    problems += test_rules(cases)
    problems += runbook_sections(rules)
    dashboard_problems, queries = check_dashboard()
    problems += dashboard_problems
    for problem in problems:
        print("monitoring-check: " + problem, file=sys.stderr)
    if problems:
        return 1
    print("monitoring-check: %d alerts checked and unit-tested by promtool (%d cases), %d dashboard queries parse"
          % (len(rules), len(cases["tests"]), queries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
