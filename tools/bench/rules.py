"""The bench's own iptables rules on the router, in chains of its own.

mangle and nat PREROUTING get one jump each (first position, so they are seen before the
product's TPROXY-ENVOY chain) to TPROXY-BENCH. Switching path = refilling TPROXY-BENCH;
an empty chain leaves the product in charge. Every rule is scoped to client -> web, so
traffic between other hosts is never touched. remove() deletes exactly what install() added.
"""

import subprocess

import lab

CHAIN = "TPROXY-BENCH"
DIVERT = "TPROXY-BENCH-DIVERT"
COMMENT = "tproxy.envoy bench (temporary)"
CHAINS = {"mangle": (CHAIN, DIVERT), "nat": (CHAIN,)}
SCOPE = f"-s {lab.CLIENT}/32 -d {lab.WEB}/32 -p tcp"


def _ipt(*args, check=True):
    return lab.run(lab.in_netns("router", ["iptables", *args]), check=check)


def _restore(text):
    res = subprocess.run(lab.in_netns("router", ["iptables-restore", "--noflush"]), input=text,
                         text=True, capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"iptables-restore on the router failed: {res.stderr.strip()}\n{text}")


JUMP = ["-m", "comment", "--comment", COMMENT, "-j", CHAIN]


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
    remove()
    lines = []
    for table, chains in CHAINS.items():
        lines.append(f"*{table}")
        lines += [f":{chain} - [0:0]" for chain in chains]
        lines.append("COMMIT")
    _restore("\n".join(lines) + "\n")
    for table in CHAINS:
        _ipt("-t", table, "-I", "PREROUTING", "1", *JUMP)
    _set({"mangle": [f"-A {DIVERT} -j MARK --set-xmark {lab.TPROXY_MARK}", f"-A {DIVERT} -j ACCEPT"]},
         chains={"mangle": (DIVERT,)})


def _set(rules, chains=None):
    chains = chains or {"mangle": (CHAIN,), "nat": (CHAIN,)}
    lines = []
    for table, names in chains.items():
        lines.append(f"*{table}")
        lines += [f":{name} - [0:0]" for name in names]  # declaring a chain flushes it
        lines += rules.get(table, [])
        lines.append("COMMIT")
    _restore("\n".join(lines) + "\n")


def path_rules(kind, port, proxy_port=None):
    """The TPROXY-BENCH content for one path (see tools/bench/README.md for the choice)."""
    accept = f"-A {CHAIN} {SCOPE} -m tcp --dport {port} -j ACCEPT"
    if kind == "direct":  # seen before the product's TPROXY rule: the router only forwards
        return {"mangle": [accept]}
    if kind == "product":  # nothing of ours: the product's own TPROXY-ENVOY chain decides
        return {}
    if kind == "tproxy":  # the product's rule shape, pointing at a bench proxy on loopback
        return {"mangle": [
            f"-A {CHAIN} {SCOPE} -m socket --transparent -j {DIVERT}",
            f"-A {CHAIN} {SCOPE} -m tcp --dport {port} -j TPROXY --on-port {proxy_port} "
            f"--on-ip 127.0.0.1 --tproxy-mark {lab.TPROXY_MARK}"]}
    if kind == "redirect":  # skip the product's TPROXY in mangle, then NAT to the proxy
        return {"mangle": [accept],
                "nat": [f"-A {CHAIN} {SCOPE} -m tcp --dport {port} -j REDIRECT --to-ports {proxy_port}"]}
    raise ValueError(f"unknown path kind {kind}")


def use(kind, port, proxy_port=None):
    _set(path_rules(kind, port, proxy_port))


def present():
    """Whether any bench rule or chain is still on the router (for the final check)."""
    for table in CHAINS:
        if CHAIN in _ipt("-t", table, "-S", check=False).stdout:
            return True
    return False
