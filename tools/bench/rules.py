"""The bench's own iptables rules on the router, in chains of its own.

mangle and nat PREROUTING get one jump each (first position, so they are seen before the
product's TPROXY-ENVOY chain) to TPROXY-BENCH, and the jumps take only client -> web TCP, so
traffic between other hosts is never touched. Switching path = refilling the bench's chains;
empty chains leave the product in charge. remove() deletes exactly what install() added.

The TPROXY path's rules are not written here: they are the router role's own rendered rule set
(tasks_from: render, rules.v4), for a bench proxy's port, moved into the bench's chains.
"""

import json
import os
import re
import subprocess

import lab

CHAIN = "TPROXY-BENCH"
DIVERT = "TPROXY-BENCH-DIVERT"
COMMENT = "tproxy.envoy bench (temporary)"
CHAINS = {"mangle": (CHAIN, DIVERT), "nat": (CHAIN,)}
# Every rule in the bench's chains sees only what these jumps let in.
SCOPE = ["-s", f"{lab.CLIENT}/32", "-d", f"{lab.WEB}/32", "-p", "tcp"]
JUMP = [*SCOPE, "-m", "comment", "--comment", COMMENT, "-j", CHAIN]


def _ipt(*args, check=True):
    return lab.run(lab.in_netns("router", ["iptables", *args]), check=check)


def _restore(text):
    res = subprocess.run(lab.in_netns("router", ["iptables-restore", "--noflush"]), input=text,
                         text=True, capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"iptables-restore on the router failed: {res.stderr.strip()}\n{text}")


def remove():
    """Delete the jumps and chains if present (idempotent; safe after a crash)."""
    for table, chains in CHAINS.items():
        while _ipt("-t", table, "-D", "PREROUTING", *JUMP, check=False).returncode == 0:
            pass
        for chain in chains:
            _ipt("-t", table, "-F", chain, check=False)
        for chain in chains:
            _ipt("-t", table, "-X", chain, check=False)


def install():
    """Empty bench chains and their jumps (the product stays in charge until use())."""
    remove()
    _restore(restore_input({}))
    for table in CHAINS:
        _ipt("-t", table, "-I", "PREROUTING", "1", *JUMP)


def restore_input(rules):
    """iptables-restore input that flushes every bench chain and refills it with rules."""
    lines = []
    for table, names in CHAINS.items():
        lines.append(f"*{table}")
        lines += [f":{name} - [0:0]" for name in names]  # declaring a chain flushes it
        lines += rules.get(table, [])
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _mangle_rules(text):
    """(chain, rest of the rule) for each `-A` line of the mangle table of iptables-restore input."""
    table, rules = None, []
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table == "mangle" and line.startswith("-A "):
            chain, rest = line[3:].split(" ", 1)
            rules.append((chain, rest))
    return rules


def _target(rest):
    match = re.search(r"(?:^|\s)-j (\S+)", rest)
    return match.group(1) if match else None


def role_tproxy_rules(role_rules, port):
    """The router role's rendered mangle rules (rules.v4), for one destination port, in the
    bench's chains: its interception chain becomes CHAIN, its divert chain DIVERT, and of its
    TPROXY rules only those for `port` are kept. Everything else (match order, mark, --on-ip,
    comments) is the role's own."""
    rules = _mangle_rules(role_rules)
    intercept = {chain for chain, rest in rules if _target(rest) == "TPROXY"}
    divert = {_target(rest) for chain, rest in rules if chain in intercept and "-m socket" in rest}
    if len(intercept) != 1 or len(divert) != 1:
        raise ValueError("the router role's rule set no longer has one TPROXY chain and one divert chain "
                         f"(found {sorted(intercept)}, {sorted(divert)}): update tools/bench/rules.py")
    rename = {intercept.pop(): CHAIN, divert.pop(): DIVERT}
    out = []
    for chain, rest in rules:
        if chain not in rename:
            continue
        dport = re.search(r"--dport (\d+)\b", rest)
        if _target(rest) == "TPROXY" and (not dport or int(dport.group(1)) != port):
            continue
        target = _target(rest)
        if target in rename:
            rest = re.sub(rf"-j {re.escape(target)}$", f"-j {rename[target]}", rest)
        out.append(f"-A {rename[chain]} {rest}")
    if not any(_target(line) == "TPROXY" for line in out):
        raise ValueError(f"the router role's rendered rule set intercepts no port {port}")
    return {"mangle": out}


def path_rules(kind, port, proxy_port=None, role_rules=""):
    """The bench chains' content for one path (see tools/bench/README.md for the choice).

    role_rules: the role's rule set rendered for the path's proxy (tproxy paths only)."""
    accept = f"-A {CHAIN} -p tcp -m tcp --dport {port} -j ACCEPT"
    if kind == "direct":  # seen before the product's TPROXY rule: the router only forwards
        return {"mangle": [accept]}
    if kind == "product":  # nothing of ours: the product's own TPROXY-ENVOY chain decides
        return {}
    if kind == "tproxy":  # the product's own rules, pointing at a bench proxy
        return role_tproxy_rules(role_rules, port)
    if kind == "redirect":  # skip the product's TPROXY in mangle, then NAT to the proxy
        return {"mangle": [accept],
                "nat": [f"-A {CHAIN} -p tcp -m tcp --dport {port} -j REDIRECT --to-ports {proxy_port}"]}
    raise ValueError(f"unknown path kind {kind}")


def use(kind, port, proxy_port=None, role_rules=""):
    _restore(restore_input(path_rules(kind, port, proxy_port, role_rules)))


def missing_policy_routing(render_dir):
    """The role's policy rules (netstate.json of a render) that the router lacks: the bench's
    TPROXY rules mark packets for the product's own `ip rule` and route table."""
    with open(os.path.join(render_dir, "netstate.json"), encoding="utf-8") as f:
        wanted = json.load(f)["netstate_ip_rules"]
    live = lab.run(lab.in_netns("router", ["ip", "rule", "list"])).stdout
    return [rule for rule in wanted if not re.search(rf"\s{re.escape(rule)}\s*$", live, re.MULTILINE)]


def present():
    """Whether any bench rule or chain is still on the router (for the final check)."""
    for table in CHAINS:
        if CHAIN in _ipt("-t", table, "-S", check=False).stdout:
            return True
    return False
