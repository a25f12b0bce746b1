"""tproxy_collisions: foreign users of the router's mark bits and route table are found; ours are not."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.filter.tproxy_collisions import tproxy_collisions

KERNEL_RULES = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
# The items of `tproxy-envoy-router list --json` (schema: roles/netstate/README.md).
OWN = [{"kind": "chain", "table": "mangle", "chain": "TPROXY-ENVOY"},
       {"kind": "chain", "table": "mangle", "chain": "TPROXY-ENVOY-DIVERT"},
       {"kind": "jump", "table": "mangle", "from": "PREROUTING", "chain": "TPROXY-ENVOY"},
       {"kind": "rule", "selector": "fwmark 0x1/0x1 lookup 100"},
       {"kind": "route", "dest": "0.0.0.0/0", "table": "100", "type": "local", "via": None, "dev": "lo"}]
OUR_RULE = "32765:\tfrom all fwmark 0x1/0x1 lookup 100\n"
OUR_SAVE = ("-A PREROUTING -m comment --comment \"tproxy.envoy\" -j TPROXY-ENVOY\n"
            "-A TPROXY-ENVOY -p tcp -m tcp --dport 80 -j TPROXY --on-port 4999 --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1\n"
            "-A TPROXY-ENVOY-DIVERT -j MARK --set-xmark 0x1/0x1\n")


def test_a_clean_host_has_no_collisions():
    assert tproxy_collisions(KERNEL_RULES, "", "", 1, 100) == []


def test_our_own_earlier_run_is_not_a_collision():
    assert tproxy_collisions(KERNEL_RULES + OUR_RULE, "local default dev lo scope host\n", OUR_SAVE, 1, 100, OWN) == []


def test_the_same_rules_without_our_record_are_a_collision():
    found = tproxy_collisions(KERNEL_RULES + OUR_RULE, "local default dev lo scope host\n", OUR_SAVE, 1, 100)
    assert any("router_route_table" in f for f in found)
    assert any("router_tproxy_mark" in f and "MARK --set-xmark" in f for f in found)


def test_a_foreign_rule_on_our_table_names_router_route_table():
    found = tproxy_collisions(KERNEL_RULES + "100:\tfrom 198.51.100.0/24 lookup 100\n", "", "", 1, 100)
    assert len(found) == 1 and "router_route_table" in found[0] and "198.51.100.0/24" in found[0]


def test_a_foreign_fwmark_rule_sharing_a_bit_names_router_tproxy_mark():
    found = tproxy_collisions(KERNEL_RULES + "200:\tfrom all fwmark 0x3/0x3 lookup 200\n", "", "", 1, 100)
    assert len(found) == 1 and "router_tproxy_mark" in found[0]


def test_a_foreign_fwmark_on_other_bits_is_fine():
    assert tproxy_collisions(KERNEL_RULES + "200:\tfrom all fwmark 0x4000/0x4000 lookup 200\n", "", "", 1, 100) == []


def test_a_foreign_route_in_our_table_names_router_route_table():
    found = tproxy_collisions(KERNEL_RULES, "203.0.113.0/24 via 192.0.2.1 dev eth0\n", "", 1, 100, OWN)
    assert len(found) == 1 and "203.0.113.0/24" in found[0] and "router_route_table" in found[0]


def test_foreign_iptables_marks_are_checked_against_the_bits():
    save = ("-A PREROUTING -j MARK --set-xmark 0x4000/0x4000\n"
            "-A KUBE-MARK -j MARK --set-xmark 0x8000/0x8000\n"
            "-A OTHER -j CONNMARK --set-xmark 0x2/0x2\n"
            "-A OUTPUT -m mark --mark 0x3 -j ACCEPT\n")
    found = tproxy_collisions(KERNEL_RULES, "", save, 2, 100)
    assert [f.split("'")[1] for f in found] == ["-A OTHER -j CONNMARK --set-xmark 0x2/0x2", "-A OUTPUT -m mark --mark 0x3 -j ACCEPT"]
    assert all("router_tproxy_mark" in f for f in found)


def test_our_chains_are_ignored_even_with_overlapping_marks():
    assert tproxy_collisions(KERNEL_RULES, "", OUR_SAVE, 1, 100, OWN) == []


def test_our_local_route_in_another_table_does_not_hide_a_route_in_this_one():
    own = [dict(OWN[-1], table="101")]
    found = tproxy_collisions(KERNEL_RULES, "local default dev lo scope host\n", "", 1, 100, own)
    assert len(found) == 1 and "router_route_table" in found[0]


def test_our_rule_on_other_bits_does_not_hide_a_foreign_rule_on_ours():
    own = [{"kind": "rule", "selector": "fwmark 0x2/0x2 lookup 101"}]
    found = tproxy_collisions(KERNEL_RULES + OUR_RULE, "", "", 1, 100, own)
    assert len(found) == 1 and "router_route_table" in found[0]


@pytest.mark.parametrize("own", [["chain\tmangle\tTPROXY-ENVOY"], [{"kind": "chain", "table": "mangle"}],
                                 [{"kind": "nft", "table": "inet"}]],
                         ids=["text-line", "missing-field", "unknown-kind"])
def test_own_items_not_in_the_netstate_schema_are_refused_with_a_message(own):
    with pytest.raises(AnsibleFilterError, match="netstate items"):
        tproxy_collisions(KERNEL_RULES, "", "", 1, 100, own)


# `nft list ruleset` as nft prints it: a foreign table, iptables-nft's own table, and ours.
NFT_RULESET = """table inet operator {
\tchain pre {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tmeta mark & 0x00000002 == 0x00000002 counter accept comment "bit 2"
\t\ttcp dport 443 meta mark set meta mark | 0x00000100 accept
\t\tct mark set meta mark
\t}
}
table ip mangle {
\tchain PREROUTING {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tmeta mark set mark and 0xfffffffe xor 0x1 counter
\t}
}
table inet tproxy_envoy {
\tchain prerouting {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tmeta l4proto tcp socket transparent 1 meta mark set meta mark | 0x00000001 accept
\t}
}
"""
OWN_NFT = OWN + [{"kind": "nftable", "family": "inet", "table": "tproxy_envoy"}]


@pytest.mark.parametrize("mark,expected", [(1, []), (2, ["meta mark & 0x00000002 == 0x00000002"]),
                                           (0x100, ["tcp dport 443 meta mark set meta mark | 0x00000100"]),
                                           (0x102, ["meta mark & 0x00000002", "tcp dport 443"])])
def test_foreign_nft_rules_are_checked_against_the_bits_and_ours_are_not(mark, expected):
    found = tproxy_collisions(KERNEL_RULES, "", "-A PREROUTING -j MARK --set-xmark 0x10/0x10\n", mark, 100, OWN_NFT,
                              nft_ruleset=NFT_RULESET)
    assert len(found) == len(expected), found
    for sentence, words in zip(found, expected):
        assert words in sentence and "table inet operator" in sentence and "router_tproxy_mark" in sentence


def test_without_our_record_our_nft_table_is_a_collision():
    found = tproxy_collisions(KERNEL_RULES, "", "", 1, 100, OWN, nft_ruleset=NFT_RULESET)
    assert any("table inet tproxy_envoy" in sentence for sentence in found), found


def test_iptables_nft_tables_are_read_from_nft_when_there_is_no_iptables_save():
    # The same `and 0xfffffffe xor 0x1` rule: skipped beside iptables-save (read there), read without it.
    beside_save = tproxy_collisions(KERNEL_RULES, "", "-P INPUT ACCEPT\n-A X -j Y\n", 1, 100, OWN_NFT, nft_ruleset=NFT_RULESET)
    alone = tproxy_collisions(KERNEL_RULES, "", "", 1, 100, OWN_NFT, nft_ruleset=NFT_RULESET)
    assert not any("table ip mangle" in s for s in beside_save)
    assert any("table ip mangle" in s for s in alone)


# A dual-stack router's own IPv6 items: the same chains in ip6tables, the rule and local route in IPv6.
OWN6 = OWN + [{"kind": "chain6", "table": "mangle", "chain": "TPROXY-ENVOY"},
              {"kind": "chain6", "table": "mangle", "chain": "TPROXY-ENVOY-DIVERT"},
              {"kind": "rule6", "selector": "fwmark 0x1/0x1 lookup 100"},
              {"kind": "route", "dest": "::/0", "table": "100", "type": "local", "via": None, "dev": "lo"}]
KERNEL_RULES6 = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n"
OUR_SAVE6 = OUR_SAVE.replace("127.0.0.1", "::1")


def test_our_ipv6_items_are_not_collisions_in_ipv6():
    assert tproxy_collisions(KERNEL_RULES6 + OUR_RULE, "local default dev lo metric 1024 pref medium\n", OUR_SAVE6,
                             1, 100, OWN6, family="ipv6") == []


def test_our_ipv4_items_do_not_hide_ipv6_ones_installed_by_someone_else():
    found = tproxy_collisions(KERNEL_RULES6 + OUR_RULE, "local default dev lo metric 1024 pref medium\n", OUR_SAVE6,
                              1, 100, OWN, family="ipv6")
    assert any("router_route_table" in f for f in found)
    assert any(f.startswith("ip6tables rule '") and "router_tproxy_mark" in f for f in found)


def test_an_unknown_family_is_refused():
    with pytest.raises(AnsibleFilterError, match="family"):
        tproxy_collisions(KERNEL_RULES, "", "", 1, 100, family="inet6")
