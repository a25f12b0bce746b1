"""playbooks/verify.yml (molecule's verify step, run just before these tests) fails when a hop
is broken, naming that hop, and passes again once the router role restored it."""

import re

import pytest
import testinfra

from conftest import SCENARIO, playbook

testinfra_hosts = ["local://"]

VERIFY = "playbooks/verify.yml"
INTERCEPTION = SCENARIO / "tests" / "playbooks" / "router_interception.yml"


def output(result):
    return result.stdout[-6000:] + result.stderr[-3000:]


def restore_and_verify():
    restored = playbook(INTERCEPTION)
    assert restored.returncode == 0, output(restored)
    result = playbook(VERIFY)
    assert result.returncode == 0, output(result)
    assert "Envoy's requests on port 80, per router" in result.stdout


@pytest.fixture
def router():
    return testinfra.get_host("docker://router")


def test_verify_names_the_tproxy_to_envoy_hop_when_the_rule_misses_envoy(router):
    # The role's own rules, installed for a port where Envoy does not listen: the rules and the
    # recorded state agree, so only the TPROXY → Envoy check can tell.
    broken = playbook(INTERCEPTION, "-e", '{"router_proxy_port": 5999}')
    try:
        assert broken.returncode == 0, output(broken)
        assert "--on-port 5999 " in router.check_output("iptables-save -t mangle")
        result = playbook(VERIFY, timeout=180)
        assert result.returncode != 0, output(result)
        assert "Hop 'router: TPROXY → Envoy' failed on router" in result.output, output(result)
        assert re.search(r"nothing listens on [0-9.]+:5999\b", result.output), output(result)
    finally:
        restore_and_verify()


def test_verify_names_the_rules_hop_when_the_live_rule_was_changed(router):
    # Someone rewrote the live TPROXY rule behind the role's back.
    mangle = router.check_output("iptables-save -t mangle")
    rule = next(line for line in mangle.splitlines() if line.startswith("-A ") and "-j TPROXY " in line)
    port = rule.split("--on-port ", 1)[1].split()[0]
    router.check_output("iptables -t mangle -D %s" % rule[3:])
    router.check_output("iptables -t mangle -A %s" % rule[3:].replace("--on-port %s " % port, "--on-port 5999 "))
    try:
        result = playbook(VERIFY, timeout=180)
        assert result.returncode != 0, output(result)
        assert "Hop 'router: interception rules' failed on router" in result.output, output(result)
    finally:
        restore_and_verify()
