# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in for iptables, iptables-save and iptables-restore (the first argument names it),
enough for netstate's script: the tables live in the JSON file $FAKE_IPTABLES_STATE (for
ip6tables, ip6tables-save and ip6tables-restore: $FAKE_IP6TABLES_STATE),
{table: {chain: {"policy": P or "-", "rules": ["-s 192.0.2.10/32 -j DROP", ...]}}}.

A rule is kept as iptables-save prints it after "-A CHAIN ", comments quoted, so that
-C and -D find it by its text. Only what the script uses is understood: -w, -t, -C, -I, -A, -D,
-S CHAIN, -n -L CHAIN, -F, -X; iptables-save -t TABLE; iptables-restore -w --noflush [FILE].
"""

import json
import os
import sys

# Each family has tables of its own, as in the kernel.
STATE = os.environ["FAKE_IP6TABLES_STATE" if sys.argv[1].startswith("ip6") else "FAKE_IPTABLES_STATE"]


def load():
    with open(STATE, encoding="utf-8") as f:
        return json.load(f)


def save(state):
    with open(STATE, "w", encoding="utf-8") as f:
        json.dump(state, f)


def text(spec):
    """Arguments as one rule text, the value of --comment quoted like iptables-save does."""
    out = []
    for i, arg in enumerate(spec):
        out.append('"%s"' % arg if i and spec[i - 1] == "--comment" else arg)
    return " ".join(out)


def iptables(argv):
    state, table = load(), "filter"
    args = [a for a in argv if a not in ("-w", "-n")]
    if args[:1] == ["-t"]:
        table, args = args[1], args[2:]
    command, chain, spec = args[0], args[1] if len(args) > 1 else None, args[2:]
    chains = state.setdefault(table, {})
    if command in ("-L", "-S", "-F", "-X", "-C", "-D", "-A", "-I") and chain not in chains:
        print("iptables: No chain/target/match by that name.", file=sys.stderr)
        return 1
    rules = chains[chain]["rules"] if chain in chains else []
    if command == "-L":
        return 0
    if command == "-S":
        policy = chains[chain]["policy"]
        print("-P %s %s" % (chain, policy) if policy != "-" else "-N %s" % chain)
        for rule in rules:
            print("-A %s %s" % (chain, rule))
        return 0
    if command == "-C":
        return 0 if text(spec) in rules else 1
    if command == "-D":
        if text(spec) not in rules:
            return 1
        rules.remove(text(spec))  # the first match, like iptables
    elif command == "-A":
        rules.append(text(spec))
    elif command == "-I":
        rules.insert(0, text(spec))
    elif command == "-F":
        rules.clear()
    elif command == "-X":
        del chains[chain]
    else:
        print("fake iptables: %r not understood" % argv, file=sys.stderr)
        return 2
    save(state)
    return 0


def iptables_save(argv):
    state = load()
    tables = [argv[argv.index("-t") + 1]] if "-t" in argv else list(state)
    for table in tables:
        print("*" + table)
        for chain, data in state.get(table, {}).items():
            print(":%s %s [0:0]" % (chain, data["policy"]))
        for chain, data in state.get(table, {}).items():
            for rule in data["rules"]:
                print("-A %s %s" % (chain, rule))
        print("COMMIT")
    return 0


def iptables_restore(argv):
    assert "--noflush" in argv, argv
    files = [a for a in argv if not a.startswith("-")]
    lines = (open(files[0], encoding="utf-8").read() if files else sys.stdin.read()).splitlines()
    state, table = load(), None
    for line in lines:
        if line.startswith("*"):
            table = state.setdefault(line[1:], {})
        elif line.startswith(":"):
            chain, policy = line[1:].split()[:2]
            table[chain] = {"policy": policy, "rules": []}  # declaring a chain flushes it
        elif line.startswith("-A "):
            chain, rule = line[3:].split(" ", 1)
            table[chain]["rules"].append(rule)
    save(state)
    return 0


if __name__ == "__main__":
    sys.exit({"iptables": iptables, "iptables-save": iptables_save,
              "iptables-restore": iptables_restore}[sys.argv[1].replace("ip6", "ip")](sys.argv[2:]))
