"""Changes to a router that carries traffic (issue 14): wrk keeps 8 connections busy from the
client through the intercepted port while site.yml applies each kind of change, and every
failed request and reset connection is counted.

Configuration-only changes (ports and their modes, evidence headers, buffer limits) go through
the files Envoy watches: no restart, and the test asserts 0 errors. Changes that need a new Envoy
process (its command line) drain it first; their figures are printed for the README.
"""

import re
import subprocess
import threading

import pytest

from conftest import ADDR, assert_ok, docker_json, holder, playbook

WRK_SECONDS = 3  # one wrk run; runs follow each other until the change is applied
ERRORS = ("connect", "read", "write", "timeout")


def wrk_run():
    proc = subprocess.run(["nsenter", "-t", holder("client"), "-n", "wrk", "-t1", "-c8", "-d%ds" % WRK_SECONDS,
                           "--timeout", "5s", "http://%s/get" % ADDR["web"]],
                          capture_output=True, text=True, timeout=60, check=False)
    done = re.search(r"(\d+) requests in", proc.stdout)
    assert proc.returncode == 0 and done, proc.stdout + proc.stderr
    counts = {"requests": int(done.group(1)), "non2xx": 0}
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", proc.stdout)
    counts.update(zip(ERRORS, map(int, socket_errors.groups()) if socket_errors else (0,) * 4))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", proc.stdout)
    if non2xx:
        counts["non2xx"] = int(non2xx.group(1))
    return counts


class Load:
    """wrk runs back to back in a thread while the block runs; totals afterwards."""

    def __init__(self):
        self.runs = []
        self.failure = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        try:
            while not self._stop.is_set():
                self.runs.append(wrk_run())
        except AssertionError as exc:  # reported by the test, not lost in the thread
            self.failure = exc

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)

    def totals(self):
        assert self.failure is None, self.failure
        return {key: sum(run[key] for run in self.runs) for key in ("requests", "non2xx") + ERRORS}


def envoy_pid():
    return docker_json("router", "inspect", "tproxy-envoy")[0]["State"]["Pid"]


def change_under_load(extra_vars):
    with Load() as load:
        proc = playbook("site", "--limit", "router", "-e", extra_vars)
    counts = assert_ok(proc)
    assert counts["router"]["changed"] > 0, "the change was not applied: " + extra_vars
    totals = load.totals()
    assert totals["requests"] > 0
    return totals


@pytest.fixture(scope="module")
def converged(lab):
    # No site.yml back to the defaults afterwards: every module sets the lab to the state it needs.
    assert_ok(playbook("site"))


CONFIG_CHANGES = [
    # one more port (L4), evidence headers, another buffer limit (listener and cluster)
    '{"router_intercept_l4_ports": [5432], "router_envoy_evidence_headers": true,'
    ' "router_envoy_buffer_limit_bytes": 65536}',
    # the loaded port changes its mode: L7 to L4
    '{"router_intercept_ports": [], "router_intercept_l4_ports": [80]}',
    # and back to the defaults (L4 to L7)
    '{}',
]


def test_configuration_changes_drop_nothing_and_keep_the_envoy_process(converged):
    pid = envoy_pid()
    for extra_vars in CONFIG_CHANGES:
        totals = change_under_load(extra_vars)
        print("config change %s: %s" % (extra_vars, totals))
        assert {k: totals[k] for k in ("non2xx",) + ERRORS} == {k: 0 for k in ("non2xx",) + ERRORS}, (extra_vars, totals)
        assert envoy_pid() == pid, "a configuration-only change restarted Envoy: " + extra_vars


def test_a_new_envoy_process_is_drained_in_and_serves(converged):
    for extra_vars in ('{"router_envoy_log_level": "warning"}', '{}'):
        pid = envoy_pid()
        totals = change_under_load(extra_vars)
        # Figures for the README ("Changing a running router"); the count is Envoy's, not asserted.
        print("process change %s: %s" % (extra_vars, totals))
        assert envoy_pid() != pid, "the command line changed but Envoy was not replaced: " + extra_vars
        after = wrk_run()
        assert after["requests"] > 0 and after["non2xx"] == 0 and sum(after[k] for k in ERRORS) == 0, after
