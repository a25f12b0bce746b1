# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules for every pytest run in this repository.

pytest.ini makes this directory the rootdir of every test tree (tests/unit, tools/bench/tests,
tests/integration, tests/lab, tests/topology, molecule's testinfra tests), so this file applies to
all of them.

- Under CI (the CI environment variable is true), a skipped test is a failed test: a skip would
  report a check as done that never ran. Locally a skip stays a skip. Expected failures (xfail)
  are not skips and keep their own report.
- ``--reverse-order`` runs the selected tests last to first, to find tests that pass only
  because an earlier one ran.
"""

from __future__ import annotations

import os

import pytest

CI_VALUES = ("true", "1", "yes")


def under_ci():
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def skip_reason(report):
    """The reason a skip report carries (its longrepr is (path, line, 'Skipped: reason'))."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def fail_the_skip(report):
    report.outcome = "failed"
    report.longrepr = "skipped under CI=%s, which counts as a failure here: %s" % (
        os.environ.get("CI"), skip_reason(report))


def pytest_addoption(parser):
    parser.addoption("--reverse-order", action="store_true", default=False,
                     help="run the selected tests in reverse order (tproxy.envoy: finds order-dependent tests)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse-order"):
        items.reverse()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):  # pylint: disable=unused-argument
    report = yield
    if under_ci() and report.skipped and not hasattr(report, "wasxfail"):
        fail_the_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):  # pylint: disable=unused-argument
    # A module or class skipped as a whole (pytest.skip(allow_module_level=True), importorskip).
    report = yield
    if under_ci() and report.skipped:
        fail_the_skip(report)
    return report
