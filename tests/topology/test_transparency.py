"""A transparent hop: whatever the direct path carries, the proxied path carries unchanged.

A raw HTTP/1 echo server (transparency/rawecho.py) listens on the web host on two ports: one the
router only forwards, one it intercepts (Envoy, L7). The lab's client sends every case of
transparency/cases.yml once to each port (transparency/rawclient.py) and the two outcomes, bytes
and how the connection ended, are compared. Dates are the one value normalised (a clock). In each
family the lab has: IPv4, and IPv6 in a dual-stack lab (Envoy's ::1 address, ip6tables' TPROXY).
"""

import json
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ADDR6, assert_ok, envoy_stat, holder, playbook, sh
from polling import wait_until

HERE = pathlib.Path(__file__).resolve().parent / "transparency"
CASES = yaml.safe_load((HERE / "cases.yml").read_text())
FORWARDED, INTERCEPTED = 8081, 8082
DATE = re.compile(r"(?im)^(date: )[^\r\n]*")


def request_parts(case):
    parts = list(case["send"])
    if case.get("pad"):
        head = parts[0]
        parts[0] = head[:-2] + "X-Pad: " + "x" * case["pad"] + "\r\n\r\n"
    return parts


def normalised(outcome):
    return DATE.sub(r"\1<now>", outcome["bytes"]), outcome["end"]


FAMILIES = ["ipv4"] + (["ipv6"] if ADDR6 else [])


@pytest.fixture(scope="module")
def intercepted_echo_port(lab):
    """Site with the echo port intercepted."""
    assert_ok(playbook("site", "-e", json.dumps({"router_intercept_ports": [80, INTERCEPTED]})))
    return lab


@pytest.fixture(scope="module", params=FAMILIES)
def outcomes(request, intercepted_echo_port):
    """The echo server up on the web host's address of one family, every case sent both ways."""
    web = (ADDR6 if request.param == "ipv6" else intercepted_echo_port)["web"]
    # Only the web host's network: its mount namespace has a /tmp of its own, where a checkout
    # under the controller's /tmp would not be.
    echo = subprocess.Popen(["nsenter", "-t", holder("web"), "-n", "--", sys.executable, str(HERE / "rawecho.py"),
                             web, str(FORWARDED), str(INTERCEPTED)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listening = wait_until(lambda: len(sh("web", "ss -Hltn '( sport = :%d or sport = :%d )'"
                                              % (FORWARDED, INTERCEPTED)).stdout.strip().splitlines()) >= 2, 20, 0.2)
        assert listening, "rawecho.py did not listen on %s:%d and :%d (test setup)" % (web, FORWARDED, INTERCEPTED)
        before = envoy_stat("http.tproxy_%d.downstream_rq_total" % INTERCEPTED)
        cases = [dict(case, send=request_parts(case)) for case in CASES]
        proc = subprocess.run(["nsenter", "-t", holder("client"), "-n", "--", sys.executable,
                               str(HERE / "rawclient.py"), web, str(FORWARDED), str(INTERCEPTED)],
                              input=json.dumps(cases), capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        results = {item["name"]: item for item in json.loads(proc.stdout)}
        results["__envoy_requests__"] = envoy_stat("http.tproxy_%d.downstream_rq_total" % INTERCEPTED) - before
        yield results
    finally:
        echo.kill()
        echo.wait(timeout=30)
        # No site.yml back to the defaults here: every module sets the lab to the state it needs.


def test_every_case_crossed_envoy_on_the_intercepted_port(outcomes):
    # Each case is at least one request that Envoy's L7 listener for that port counted.
    assert outcomes["__envoy_requests__"] >= len(CASES), outcomes["__envoy_requests__"]


@pytest.mark.parametrize("case", [c for c in CASES if "pinned" not in c], ids=lambda c: c["name"])
def test_the_proxied_path_carries_the_same_bytes(outcomes, case):
    result = outcomes[case["name"]]
    direct, proxied = normalised(result["a"]), normalised(result["b"])
    assert direct[0], "the direct path got no answer: the case or the echo server is broken"
    assert proxied == direct


@pytest.mark.parametrize("case", [c for c in CASES if "pinned" in c], ids=lambda c: c["name"])
def test_a_known_envoy_difference_stays_as_documented(outcomes, case):
    """Where Envoy 1.40 cannot be made identical the difference is pinned: when it goes away, say so."""
    result = outcomes[case["name"]]
    direct, proxied = normalised(result["a"]), normalised(result["b"])
    assert direct[0], "the direct path got no answer: the case or the echo server is broken"
    assert proxied != direct, "now identical: remove the pin and its README line (%s)" % case["pinned"]
    assert case["proxied_has"] in result["b"]["bytes"], (case["pinned"], result["b"]["bytes"][:2000])
