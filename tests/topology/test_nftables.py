"""The nftables backend (issue 17 item 2): router_firewall_backend=nftables in the lab.

One module, in order: a router configured by either backend switches to nftables and keeps nothing
of iptables' interception; the run is idempotent and check mode agrees; verify.yml passes; the
failure mode is iptables' (no Envoy: the connection is dropped, not forwarded around it); boot's
`apply` brings a deleted table back; a foreign nftables rule on the mark bits stops the router
before any change; switching back to iptables leaves no table; teardown removes exactly the own
table, and a foreign nftables table survives all of it.
"""

import json

import pytest

from conftest import ADDR, ADDR6, assert_ipv6_goes_through_envoy, assert_ok, client_get, playbook, sh

NFT = ("-e", json.dumps({"router_firewall_backend": "nftables"}))
TABLE = "inet tproxy_envoy"
SCRIPT = "/usr/local/sbin/tproxy-envoy-router"
# Someone else's table: its own hook, another mark bit (4), a counter.
FOREIGN_TABLE = ("table inet operator_keep { chain pre { type filter hook prerouting priority 10; policy accept; "
                 "meta mark & 0x4 == 0x4 counter comment \"not ours\"; }; }")


def nft_list(table=TABLE):
    return sh("router", "nft list table %s" % table, check=False)


def iptables_interception():
    return [line for line in sh("router", "iptables-save -t mangle").stdout.splitlines() if "TPROXY-ENVOY" in line]


@pytest.fixture(scope="module")
def foreign_table(lab):
    sh("router", "nft -f - <<'EOF'\n%s\nEOF" % FOREIGN_TABLE)
    yield
    sh("router", "nft delete table inet operator_keep", check=False)


@pytest.fixture(scope="module")
def on_nftables(foreign_table):
    """The router on the nftables backend, whatever the lab held before."""
    assert_ok(playbook("site", *NFT))
    return True


def test_switching_to_nftables_leaves_no_iptables_interception(on_nftables):
    listing = nft_list().stdout
    assert "tproxy ip to 127.0.0.1:4999" in listing and "tcp dport 80" in listing, listing
    assert iptables_interception() == []
    # The forwarding acceptance stays in iptables, where Docker's DROP policy is.
    assert "-A FORWARD -m comment --comment tproxy.envoy -j TPROXY-ENVOY-FWD" in \
        sh("router", "iptables -S FORWARD").stdout.replace('"', "")
    assert "fwmark 0x1/0x1 lookup 100" in sh("router", "ip rule list").stdout


@pytest.mark.skipif(not ADDR6, reason="the lab inventory gives no host an IPv6 address (IPv4-only lab)")
def test_ipv6_goes_through_the_same_table_to_envoys_ipv6_address(on_nftables):
    listing = nft_list().stdout
    assert "tproxy ip6 to [::1]:4999" in listing and "icmpv6 type nd-redirect drop" in listing, listing
    assert "TPROXY-ENVOY" not in sh("router", "ip6tables-save -t mangle").stdout
    assert_ipv6_goes_through_envoy()


def test_the_run_is_idempotent_check_mode_agrees_and_verify_passes(on_nftables):
    assert_ok(playbook("site", *NFT), changed=0)
    assert_ok(playbook("site", "--check", *NFT), changed=0)
    assert_ok(playbook("verify", *NFT), changed=0)


def test_marks_are_masked_and_every_rule_is_commented(on_nftables):
    structure = ("table ", "chain ", "set ", "type ", "size ", "flags ", "elements ", "}")
    rules = [line.strip() for line in nft_list().stdout.splitlines() if line.strip() and not line.strip().startswith(structure)]
    # socket, loop guard, then per family the connection limit, port 80 and the failure mode's drop; in a
    # dual-stack lab also the drop of IPv6 redirects.
    families = 2 if ADDR6 else 1
    assert len(rules) == 2 + 3 * families + (families - 1), rules
    assert rules and all('comment "tproxy.envoy' in line for line in rules), rules
    marks = [line for line in rules if "mark set" in line]
    assert marks and all("meta mark set meta mark | 0x00000001" in line for line in marks), marks


def test_without_envoy_connections_are_dropped_not_forwarded_around_it(on_nftables):
    # nftables' tproxy falls through without a listener; the explicit drop keeps iptables' failure mode.
    sh("router", "docker stop -t 2 tproxy-envoy >/dev/null")
    try:
        out = client_get("http://%s/get" % ADDR["web"], timeout=4)
        assert out.returncode != 0 and "200 OK" not in out.stdout, out
        if ADDR6:
            out = client_get("http://[%s]/get" % ADDR6["web"], timeout=4)
            assert out.returncode != 0 and "200 OK" not in out.stdout, out
        assert "drop" in nft_list().stdout
    finally:
        sh("router", "docker start tproxy-envoy >/dev/null")
    assert_ok(playbook("verify", *NFT))


def test_boot_apply_brings_a_deleted_table_back(on_nftables):
    sh("router", "nft delete table %s" % TABLE)
    check = sh("router", "%s check" % SCRIPT, check=False)
    assert check.returncode == 3 and "missing nftables table: inet tproxy_envoy" in check.stdout, check
    sh("router", "%s apply" % SCRIPT)
    assert sh("router", "%s check" % SCRIPT, check=False).returncode == 0
    assert "tproxy ip to" in nft_list().stdout


def test_a_hand_edited_table_is_a_drift_that_the_next_run_repairs(on_nftables):
    sh("router", "nft add rule %s prerouting tcp dport 9999 accept" % TABLE)
    check = sh("router", "%s check" % SCRIPT, check=False)
    assert check.returncode == 3 and "differ" in check.stdout, check
    assert_ok(playbook("site", *NFT))
    assert "9999" not in nft_list().stdout


def test_a_foreign_nftables_user_of_the_mark_stops_the_router_before_any_change(on_nftables):
    sh("router", "nft add rule inet operator_keep pre meta mark set meta mark \\| 0x1 comment \\\"mark thief\\\"")
    try:
        before = nft_list().stdout
        run = playbook("site", *NFT)
        assert run.returncode != 0 and "already uses mark bits 0x1" in run.stdout and "operator_keep" in run.stdout, \
            run.stdout[-3000:]
        assert nft_list().stdout == before
    finally:
        handle = sh("router", "nft -a list chain inet operator_keep pre | awk '/mark thief/ {print $NF}'").stdout.strip()
        sh("router", "nft delete rule inet operator_keep pre handle %s" % handle)


def test_switching_back_to_iptables_leaves_no_table(on_nftables):
    assert_ok(playbook("site"))
    assert nft_list().returncode != 0
    assert len(iptables_interception()) > 2
    assert "operator_keep" in sh("router", "nft list tables").stdout
    assert_ok(playbook("site", *NFT))  # and over again, for the teardown below
    assert iptables_interception() == []


def test_teardown_removes_the_table_and_spares_the_foreign_one(on_nftables):
    assert_ok(playbook("teardown", *NFT))
    assert nft_list().returncode != 0
    assert "TPROXY-ENVOY" not in sh("router", "iptables-save").stdout
    assert sh("router", "ls /etc/tproxy-envoy/router.nft /etc/tproxy-envoy/router.nft.applied %s" % SCRIPT,
              check=False).stdout == ""
    assert 'comment "not ours"' in nft_list("inet operator_keep").stdout
