"""A run is accepted only when the direct path is the fastest (issue 18: a sane baseline)."""

import json
import os

import report

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")


def _row(path, rps, conns=64, target="static", spread=None):
    row = {"target": target, "path": path, "conns": conns, "rps": rps}
    if spread:
        row["spread"] = {"rps": list(spread)}
    return row


def test_direct_fastest_everywhere_is_accepted():
    summary = [_row("direct", 900), _row("envoy-tproxy", 300), _row("direct", 90, 1), _row("envoy-tproxy", 30, 1)]
    assert report.baseline_problems(summary) == []


def test_a_proxy_ahead_of_direct_is_named_with_both_rates():
    # The httpbin baseline of 2026-11-26: one stalled gunicorn worker behind the direct path.
    summary = [_row("direct", 66, 16, "httpbin"), _row("envoy-tproxy", 869, 16, "httpbin"),
               _row("haproxy-http", 50, 16, "httpbin"), _row("direct", 900), _row("envoy-tproxy", 300)]
    assert report.baseline_problems(summary) == [
        "httpbin at 16 conns: envoy-tproxy 869 req/s (slowest repeat 869) is faster than direct 66 req/s "
        "(fastest repeat 66)"]


def test_groups_without_a_direct_row_are_not_judged():
    assert report.baseline_problems([_row("envoy-tproxy", 300), _row("haproxy-http", 500)]) == []


def test_the_latest_committed_results_pass_the_check():
    newest = max(f for f in os.listdir(RESULTS) if f.endswith(".json") and f[0].isdigit())
    with open(os.path.join(RESULTS, newest), encoding="utf-8") as f:
        summary = json.load(f)["summary"]
    assert report.baseline_problems(summary) == [], newest


def test_a_proxy_barely_ahead_of_direct_without_spread_is_refused():
    summary = [_row("direct", 300), _row("haproxy-tcp", 301)]
    assert report.baseline_problems(summary) == [
        "static at 64 conns: haproxy-tcp 301 req/s (slowest repeat 301) is faster than direct 300 req/s "
        "(fastest repeat 300)"]


def test_a_median_ahead_within_the_repeats_spread_is_noise():
    # 2026-12-06 run at b8ca115: haproxy-http 3106 against direct 3078 at 16 conns, repeats overlapping.
    summary = [_row("direct", 3078, 16, "httpbin", (2990, 3150)), _row("haproxy-http", 3106, 16, "httpbin", (3040, 3120))]
    assert report.baseline_problems(summary) == []


def test_a_proxy_whose_slowest_repeat_beats_directs_fastest_is_refused():
    summary = [_row("direct", 3078, 16, "httpbin", (2990, 3100)), _row("haproxy-http", 3300, 16, "httpbin", (3150, 3400))]
    assert report.baseline_problems(summary) == [
        "httpbin at 16 conns: haproxy-http 3300 req/s (slowest repeat 3150) is faster than direct 3078 req/s "
        "(fastest repeat 3100)"]
