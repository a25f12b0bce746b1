"""netstate's script: where `apply` puts each jump, and what `check` says about its place.

The router's FORWARD jump goes last (jump_position: last), after Docker's chains and every rule of
the operator, so that a foreign rule that drops some client traffic still drops it; its mangle
PREROUTING jump goes first. The script runs with sh against fake_iptables.py (no root, no kernel).
"""

import json
import os
import pathlib
import subprocess
import sys

from ansible_collections.tproxy.envoy.tests.unit.roles.netstate.test_list_json import script

FAKE = pathlib.Path(__file__).resolve().with_name("fake_iptables.py")
RULES = """*mangle
:TPROXY-ENVOY - [0:0]
-A TPROXY-ENVOY -p tcp -m tcp --dport 80 -m comment --comment "tproxy.envoy: intercept port 80" -j ACCEPT
COMMIT
*filter
:TPROXY-ENVOY-FWD - [0:0]
-A TPROXY-ENVOY-FWD -s 192.0.2.10/32 -m comment --comment "tproxy.envoy: forward for 192.0.2.10/32" -j ACCEPT
COMMIT
"""
ROUTER = {
    "netstate_name": "router",
    "netstate_iptables": [{"table": "mangle", "chain": "TPROXY-ENVOY", "jump_from": "PREROUTING"},
                          {"table": "filter", "chain": "TPROXY-ENVOY-FWD", "jump_from": "FORWARD",
                           "jump_position": "last"}],
}
PREROUTING_JUMP = '-m comment --comment "tproxy.envoy" -j TPROXY-ENVOY'
FORWARD_JUMP = '-m comment --comment "tproxy.envoy" -j TPROXY-ENVOY-FWD'
# What dockerd leaves in FORWARD (its jumps first, policy DROP), and one rule of the operator's.
DOCKER = ["-j DOCKER-USER", "-j DOCKER-FORWARD"]
OPERATOR_DROP = "-s 192.0.2.10/32 -d 192.0.2.180/32 -p tcp -m tcp --dport 8081 -j DROP"


class Host:
    """The script and a fake netfilter: `run` executes a command, `rules` reads a chain back."""

    def __init__(self, tmp_path, forward, prerouting=(), data=None, forward6=()):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name in ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"):
            (self.bin / name).write_text('#!/bin/sh\nexec "%s" "%s" %s "$@"\n' % (sys.executable, FAKE, name))
            (self.bin / name).chmod(0o755)
        rules, rules6 = tmp_path / "router.rules", tmp_path / "router.rules6"
        rules.write_text(RULES)
        rules6.write_text(RULES.replace("192.0.2.10/32", "2001:db8::10/128"))
        self.script = script(tmp_path, dict(data or ROUTER, netstate_rules_path=str(rules),
                                            netstate_rules6_path=str(rules6)))
        self.state, self.state6 = tmp_path / "iptables.json", tmp_path / "ip6tables.json"
        for state, rules_forward in ((self.state, forward), (self.state6, forward6)):
            state.write_text(json.dumps({
                "mangle": {"PREROUTING": {"policy": "ACCEPT", "rules": list(prerouting)}},
                "filter": {"FORWARD": {"policy": "DROP", "rules": list(rules_forward)},
                           "DOCKER-USER": {"policy": "-", "rules": []},
                           "DOCKER-FORWARD": {"policy": "-", "rules": []}},
            }))
        self.env = dict(os.environ, PATH="%s:%s" % (self.bin, os.environ["PATH"]), FAKE_IPTABLES_STATE=str(self.state),
                        FAKE_IP6TABLES_STATE=str(self.state6))

    def run(self, command):
        return subprocess.run(["sh", str(self.script), command], capture_output=True, text=True, env=self.env,
                              check=False)

    def rules(self, table, chain, state=None):
        return json.loads((state or self.state).read_text())[table][chain]["rules"]

    def rules6(self, table, chain):
        return self.rules(table, chain, self.state6)

    def iptables(self, *args):
        subprocess.run([str(self.bin / "iptables"), *args], env=self.env, check=True)


def applied(host):
    proc = host.run("apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = host.run("check")
    assert check.returncode == 0, check.stdout + check.stderr
    return host


def test_forward_jump_goes_after_docker_and_the_operator_prerouting_jump_first(tmp_path):
    host = applied(Host(tmp_path, DOCKER + [OPERATOR_DROP], prerouting=["-s 203.0.113.7/32 -j ACCEPT"]))
    assert host.rules("filter", "FORWARD") == DOCKER + [OPERATOR_DROP, FORWARD_JUMP]
    assert host.rules("mangle", "PREROUTING") == [PREROUTING_JUMP, "-s 203.0.113.7/32 -j ACCEPT"]


def test_a_second_apply_moves_nothing(tmp_path):
    host = applied(Host(tmp_path, DOCKER))
    before = host.state.read_text()
    applied(host)
    assert host.state.read_text() == before


def test_a_rule_inserted_ahead_later_is_no_drift_and_stays_ahead(tmp_path):
    # An operator's `iptables -I FORWARD` (or a rule in DOCKER-USER): seen before the own chain.
    host = applied(Host(tmp_path, DOCKER))
    host.iptables("-I", "FORWARD", "-s", "192.0.2.10/32", "-d", "192.0.2.180/32", "-p", "tcp", "-m", "tcp",
                  "--dport", "8081", "-j", "DROP")
    assert host.run("check").returncode == 0
    applied(host)
    assert host.rules("filter", "FORWARD") == [OPERATOR_DROP] + DOCKER + [FORWARD_JUMP]


def test_an_earlier_versions_jump_at_the_top_is_drift_and_moved_to_the_end_once(tmp_path):
    # Versions before this one inserted the FORWARD jump first, ahead of DOCKER-USER.
    host = Host(tmp_path, [FORWARD_JUMP] + DOCKER + [OPERATOR_DROP], prerouting=[PREROUTING_JUMP])
    check = host.run("check")
    assert check.returncode == 3
    assert check.stdout.splitlines() == [
        "own iptables chains differ from %s" % (tmp_path / "router.rules"),
        "iptables jump not last in its chain (a rule after it would be overridden): -t filter FORWARD -> TPROXY-ENVOY-FWD"]
    applied(host)
    assert host.rules("filter", "FORWARD") == DOCKER + [OPERATOR_DROP, FORWARD_JUMP]
    assert host.rules("mangle", "PREROUTING") == [PREROUTING_JUMP]


def test_a_rule_appended_after_the_jump_is_drift_and_the_jump_moves_behind_it(tmp_path):
    host = applied(Host(tmp_path, DOCKER))
    host.iptables("-A", "FORWARD", "-s", "192.0.2.10/32", "-d", "192.0.2.180/32", "-p", "tcp", "-m", "tcp",
                  "--dport", "8081", "-j", "DROP")
    check = host.run("check")
    assert check.returncode == 3 and "jump not last" in check.stdout, check.stdout
    applied(host)
    assert host.rules("filter", "FORWARD") == DOCKER + [OPERATOR_DROP, FORWARD_JUMP]


def test_copies_of_the_jump_leave_one_last(tmp_path):
    host = applied(Host(tmp_path, [FORWARD_JUMP] + DOCKER + [FORWARD_JUMP, OPERATOR_DROP, FORWARD_JUMP]))
    assert host.rules("filter", "FORWARD") == DOCKER + [OPERATOR_DROP, FORWARD_JUMP]


def test_a_first_jump_behind_a_foreign_rule_is_left_where_it_is(tmp_path):
    # jump_position first (the default): inserted when missing, never moved.
    host = applied(Host(tmp_path, DOCKER, prerouting=["-s 203.0.113.7/32 -j ACCEPT", PREROUTING_JUMP]))
    assert host.rules("mangle", "PREROUTING") == ["-s 203.0.113.7/32 -j ACCEPT", PREROUTING_JUMP]


def test_without_jump_position_every_jump_goes_first(tmp_path):
    data = {"netstate_name": "router",
            "netstate_iptables": [{"table": "mangle", "chain": "TPROXY-ENVOY", "jump_from": "PREROUTING"},
                                  {"table": "filter", "chain": "TPROXY-ENVOY-FWD", "jump_from": "FORWARD"}]}
    host = applied(Host(tmp_path, DOCKER, data=data))
    assert host.rules("filter", "FORWARD") == [FORWARD_JUMP] + DOCKER


def test_remove_takes_the_jumps_and_chains_wherever_they_are(tmp_path):
    host = applied(Host(tmp_path, DOCKER + [OPERATOR_DROP]))
    assert host.run("remove").returncode == 0
    assert host.rules("filter", "FORWARD") == DOCKER + [OPERATOR_DROP]
    assert host.rules("mangle", "PREROUTING") == []
    assert "TPROXY-ENVOY-FWD" not in json.loads(host.state.read_text())["filter"]


# The same chains in ip6tables (a dual-stack router): each family's jumps in its own tables.
DUAL = dict(ROUTER, netstate_ip6tables=ROUTER["netstate_iptables"])
OPERATOR_DROP6 = "-s 2001:db8::10/128 -d 2001:db8::180/128 -p tcp -m tcp --dport 8081 -j DROP"


def test_ip6tables_gets_the_same_chains_and_jump_positions_in_its_own_tables(tmp_path):
    host = applied(Host(tmp_path, DOCKER, data=DUAL, forward6=DOCKER + [OPERATOR_DROP6]))
    assert host.rules("filter", "FORWARD") == DOCKER + [FORWARD_JUMP]
    assert host.rules6("filter", "FORWARD") == DOCKER + [OPERATOR_DROP6, FORWARD_JUMP]
    assert host.rules6("mangle", "PREROUTING") == [PREROUTING_JUMP]
    assert host.rules6("filter", "TPROXY-ENVOY-FWD")[0].startswith("-s 2001:db8::10/128 ")


def test_ip6tables_drift_is_named_as_such_and_remove_takes_both_families(tmp_path):
    host = applied(Host(tmp_path, DOCKER, data=DUAL, forward6=DOCKER))
    subprocess.run([str(host.bin / "ip6tables"), "-A", "FORWARD", "-j", "DROP"], env=host.env, check=True)
    check = host.run("check")
    assert check.returncode == 3
    assert check.stdout.splitlines() == ["ip6tables jump not last in its chain (a rule after it would be overridden): "
                                         "-t filter FORWARD -> TPROXY-ENVOY-FWD"]
    assert host.run("remove").returncode == 0
    assert host.rules("filter", "FORWARD") == DOCKER
    assert host.rules6("filter", "FORWARD") == DOCKER + ["-j DROP"]
    assert "TPROXY-ENVOY-FWD" not in json.loads(host.state6.read_text())["filter"]
