# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that finds other users of the router's mark and route table."""

from __future__ import annotations

DOCUMENTATION = r"""
name: tproxy_collisions
author: tproxy.envoy contributors (@tproxy)
version_added: 0.1.0
short_description: Rules and routes of others that use the router's mark bits or route table
description:
  - Reads C(ip rule list), C(ip route show table TABLE) and C(iptables-save) output and lists
    every policy rule, route and iptables rule that is not the collection's own but uses the
    route table or any bit of the mark. Each entry names the variable to change.
  - One family at a time. With O(family=ipv6) the inputs are C(ip -6 rule list), C(ip -6 route show table TABLE)
    and C(ip6tables-save), and the own items are the IPv6 ones (C(chain6), C(rule6), the route to C(::/0)).
  - What the collection itself installed (the items of the router's state script C(list --json)) is
    never a collision.
options:
  _input:
    description: Output of C(ip rule list).
    type: str
    required: true
  routes:
    description: Output of C(ip route show table TABLE).
    type: str
    required: true
  iptables_save:
    description: Output of C(iptables-save).
    type: str
    required: true
  mark:
    description: The mark bits (C(router_tproxy_mark)).
    type: int
    required: true
  table:
    description: The route table (C(router_route_table)).
    type: int
    required: true
  nft_ruleset:
    description:
      - Output of C(nft list ruleset), or empty where the host has no C(nft). Every rule outside the
        collection's own table that reads or writes the mark bits is a collision. Tables named as
        iptables' own (C(filter), C(nat), C(mangle), C(raw), C(security) of family C(ip) or C(ip6)) are
        skipped when O(iptables_save) is given, because they are iptables-nft's and already read there.
    type: str
    default: ""
  family:
    description: The family the inputs are of.
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  own:
    description:
      - The items an earlier run installed, in the shape the netstate role documents in its README.md,
        dicts with C(kind) C(chain), C(jump), C(rule), C(route), C(nftable), C(chain6), C(jump6) or C(rule6).
        Empty when nothing is installed.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Stop when another tool uses our mark or table
  ansible.builtin.assert:
    that: collisions | length == 0
    fail_msg: "{{ collisions | join('; ') }}"
  vars:
    collisions: >-
      {{ rules.stdout | tproxy.envoy.tproxy_collisions(routes.stdout, save.stdout, 1, 100,
                                                       (own.stdout | from_json)['items']) }}
"""

RETURN = r"""
_value:
  description: One sentence per collision, naming what collides and which variable to change.
  type: list
  elements: str
"""

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# The fields each kind of netstate item has (roles/netstate/README.md).
_ITEM_FIELDS = {"chain": ("table", "chain"), "jump": ("table", "from", "chain"), "rule": ("selector",),
                "route": ("dest", "table", "type", "via", "dev"), "nftable": ("family", "table"),
                "chain6": ("table", "chain"), "jump6": ("table", "from", "chain"), "rule6": ("selector",)}
# Priorities of the kernel's own rules (local, main, default).
_KERNEL_RULES = {"0", "32766", "32767"}
_MARK_OPTION = re.compile(r"--(?:set-xmark|set-mark|tproxy-mark|or-mark|xor-mark|mark)\s+(0x[0-9a-fA-F]+|\d+)(?:/(0x[0-9a-fA-F]+|\d+))?")
_RULE_MARK = re.compile(r"\bfwmark\s+(0x[0-9a-fA-F]+|\d+)(?:/(0x[0-9a-fA-F]+|\d+))?")
_RULE_TABLE = re.compile(r"\b(?:lookup|table)\s+(\S+)")
_NFT_NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+")
# Words that may sit between `mark` and its constants in `nft list ruleset` output.
_NFT_MARK_WORDS = {"set", "meta", "mark", "or", "xor", "|", "^", "==", "!=", "and", "&"}
_IPTABLES_TABLES = {"filter", "nat", "mangle", "raw", "security"}


def _int(text):
    return int(text, 0)


def _bits(value, mask):
    """The mark bits a rule reads or writes: its mask, or its value without one."""
    return _int(mask) if mask else _int(value)


# Per family: the item kinds of its chains and rules, and its default route's destination.
_FAMILY_ITEMS = {"ipv4": ("chain", "rule", "0.0.0.0/0"), "ipv6": ("chain6", "rule6", "::/0")}


def _own(items, family="ipv4"):
    """Own chains, own rule selectors and the tables of own "local default" routes, of one family."""
    chain_kind, rule_kind, default_dest = _FAMILY_ITEMS[family]
    chains, selectors, local_tables, nftables = set(), set(), set(), set()
    for item in items or []:
        kind = item.get("kind") if isinstance(item, Mapping) else None
        if kind not in _ITEM_FIELDS or any(field not in item for field in _ITEM_FIELDS[kind]):
            raise AnsibleFilterError("tproxy_collisions: 'own' must hold netstate items (roles/netstate/README.md), got %r" % (item,))
        if kind == chain_kind:
            chains.add(item["chain"])
        elif kind == rule_kind:
            selectors.add(" ".join(item["selector"].split()))
        elif kind == "route" and item["dest"] == default_dest and item["type"] == "local":
            local_tables.add(str(item["table"]))
        elif kind == "nftable":
            nftables.add((item["family"], item["table"]))
    return chains, selectors, local_tables, nftables


def _rule_is_own(body, selectors):
    """An `ip rule list` line body is ours when it is exactly one of our selectors."""
    words = body.replace("from all ", "", 1).split()
    return " ".join(words) in selectors


def _nft_mark_bits(line):
    """The mark bits an nft rule line reads or writes: the constants after each `mark` keyword
    (`meta mark & 0x1 == 0x1`, `meta mark set meta mark | 0x2`, `mark set 0x4`); in a `set`, an `and`
    keeps the bits it names, so it touches the others."""
    tokens = line.replace("&", " & ").replace("|", " | ").replace("^", " ^ ").split()
    bits = 0
    for start, token in enumerate(tokens):
        if token != "mark" or (start and tokens[start - 1] == "ct"):
            continue
        keeps = writing = False
        for word in tokens[start + 1:]:
            if word == "set":
                writing = True
            elif word in ("and", "&"):
                keeps = writing
            elif word in _NFT_MARK_WORDS:
                keeps = False
            elif _NFT_NUMBER.fullmatch(word):
                value = _int(word)
                bits |= (~value & 0xFFFFFFFF) if keeps else value
                keeps = False
            else:
                break
    return bits


def _nft_collisions(ruleset, mark, chains, nftables, skip_iptables_tables):
    found, table_key, chain = [], None, None
    for line in (ruleset or "").splitlines():
        words = line.split()
        if words[:1] == ["table"] and len(words) >= 3:
            table_key, chain = (words[1], words[2]), None
            continue
        if words[:1] == ["chain"] and len(words) >= 2:
            chain = words[1]
            continue
        if not words or words[0] in ("type", "policy", "}") or table_key is None or chain is None:
            continue
        if table_key in nftables or chain in chains:
            continue
        if skip_iptables_tables and table_key[0] in ("ip", "ip6") and table_key[1] in _IPTABLES_TABLES:
            continue
        if _nft_mark_bits(line) & mark:
            found.append("nftables rule '%s' in table %s %s chain %s already uses mark bits 0x%x: set router_tproxy_mark "
                         "to free bits" % (" ".join(words), table_key[0], table_key[1], chain, mark))
    return found


def tproxy_collisions(ip_rules, routes, iptables_save, mark, table, own=None, nft_ruleset="", family="ipv4"):
    """Sentences describing every foreign use of ``mark`` bits or route ``table`` in one family."""
    if family not in _FAMILY_ITEMS:
        raise AnsibleFilterError("tproxy_collisions: family must be ipv4 or ipv6, not %r" % (family,))
    chains, selectors, local_tables, nftables = _own(own, family)
    tool = "ip6tables" if family == "ipv6" else "iptables"
    found = []
    for line in (ip_rules or "").splitlines():
        prio, sep, body = line.partition(":")
        if not sep or prio.strip() in _KERNEL_RULES or _rule_is_own(body, selectors):
            continue
        body = " ".join(body.split())
        tables = _RULE_TABLE.findall(body)
        if str(table) in tables:
            found.append("policy rule '%s' already uses route table %d: set router_route_table to a free table" % (body, table))
            continue
        m = _RULE_MARK.search(body)
        if m and _bits(m.group(1), m.group(2)) & mark:
            found.append("policy rule '%s' already uses mark bits 0x%x: set router_tproxy_mark to free bits" % (body, mark))
    for line in (routes or "").splitlines():
        line = " ".join(line.split())
        if not line or (str(table) in local_tables and line.startswith("local default dev lo")):
            continue
        found.append("route table %d already holds '%s': set router_route_table to a free table" % (table, line))
    for line in (iptables_save or "").splitlines():
        if not line.startswith("-A "):
            continue
        chain = line.split()[1]
        if chain in chains:
            continue
        for value, mask in _MARK_OPTION.findall(line):
            if _bits(value, mask) & mark:
                found.append("%s rule '%s' already uses mark bits 0x%x: set router_tproxy_mark to free bits" % (tool, line, mark))
                break
    return found + _nft_collisions(nft_ruleset, mark, chains, nftables, bool((iptables_save or "").strip()))


class FilterModule:
    """tproxy.envoy collision filters."""

    def filters(self):
        return {"tproxy_collisions": tproxy_collisions}
