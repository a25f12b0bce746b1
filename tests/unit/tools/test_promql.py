# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/monitoring/promql.py: the metric names a PromQL expression reads, and nothing else.

The alert rules' and the dashboard's names are compared with a live router's scrape
(tests/topology/test_monitoring.py); a name missed or invented here would make that check lie.
"""

from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "monitoring"))
import promql  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize("expr, expected", [
    ('up{job="tproxy-envoy"} == 0', {"up": {"job"}}),
    ("absent(up)", {"up": set()}),
    ('sum by (job, instance) (rate(a_total{x=~"tproxy_.+"}[5m] offset 30m)) / on (job) group_left (le) b', {
        "a_total": {"x"}, "b": set()}),
    ('sum(rate(c[$__rate_interval])) without (instance) > bool 1e3', {"c": set()}),
    ('histogram_quantile(0.99, sum by (le) (rate(d_bucket{job="$job", instance=~"$instance"}[1h30m])))',
     {"d_bucket": {"job", "instance"}}),
    ('{__name__="e", q!~"w"} unless f @ start() or topk(5, g) and count_values("le", h)',
     {"e": {"q"}, "f": set(), "g": set(), "h": set()}),
    ('avg_over_time(rec:rule_name:rate5m{label="by (sum)"}[1d:5m]) * 0x1f + Inf - NaN',
     {"rec:rule_name:rate5m": {"label"}}),
    ('max without (a) (i{a="1"}) * on () group_right j', {"i": {"a"}, "j": set()}),
    ("vector(1) + time()", {}),
])
def test_the_names_read_are_the_selectors_and_only_they(expr, expected):
    assert promql.selectors(expr) == expected


@pytest.mark.parametrize("expr", ['sum(rate(a[5m])', '{job="x"}', 'a{b="c"} ; d'])
def test_an_expression_it_cannot_read_is_an_error(expr):
    with pytest.raises(promql.PromQLError):
        promql.selectors(expr)
