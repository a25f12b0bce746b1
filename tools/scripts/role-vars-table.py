#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role variable tables for the README, generated from meta/argument_specs.yml.

The README holds one table per role entry point between two markers:

    <!-- BEGIN role vars: router -->            (the role's "main" entry point)
    <!-- END role vars: router -->
    <!-- BEGIN role vars: router.teardown -->   (any other entry point)
    <!-- END role vars: router.teardown -->

  role-vars-table.py                      print every role's block, markers included
  role-vars-table.py router               print only these roles' blocks
  role-vars-table.py --check README.md    exit 1 if a block differs from the specs, names
                                          an unknown role or entry point, or a role has no block
  role-vars-table.py --update README.md   rewrite the blocks in place from the specs

--exclude ROLE leaves an internal role out of the "every role has a block" rule.
"""

from __future__ import annotations

import argparse
import difflib
import json
import pathlib
import re
import sys

import yaml

BEGIN = "<!-- BEGIN role vars: {} -->"
END = "<!-- END role vars: {} -->"
BLOCK_RE = re.compile(
    r"<!-- BEGIN role vars: (?P<key>[\w.]+) -->\n(?P<body>.*?)<!-- END role vars: (?P=key) -->",
    re.DOTALL,
)
MARKER_RE = re.compile(r"<!-- (BEGIN|END) role vars: ([\w.]+) -->")

# Ansible documentation markup -> Markdown (the subset argument specs use).
MARKUP = [
    (re.compile(r"L\(([^)]+?),\s*([^)]+)\)"), r"[\1](\2)"),
    (re.compile(r"[CVOMP]\(([^)]*)\)"), r"`\1`"),
    (re.compile(r"I\(([^)]*)\)"), r"*\1*"),
    (re.compile(r"B\(([^)]*)\)"), r"**\1**"),
    (re.compile(r"U\(([^)]*)\)"), r"\1"),
]


class SpecError(Exception):
    """A role, an entry point or a README block that cannot be rendered or checked."""


def load_specs(roles_dir: pathlib.Path) -> dict[str, dict]:
    """Role name -> its argument_specs mapping, for every role that has one."""
    specs = {}
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        for name in ("argument_specs.yml", "argument_specs.yaml"):
            path = role / "meta" / name
            if path.is_file():
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                specs[role.name] = data.get("argument_specs") or {}
                break
    return specs


def split_key(key: str) -> tuple[str, str]:
    """'router' -> ('router', 'main'); 'router.teardown' -> ('router', 'teardown')."""
    role, _sep, entry_point = key.partition(".")
    return role, entry_point or "main"


def markdown(text) -> str:
    """One table cell from a description (string or list of paragraphs)."""
    if isinstance(text, list):
        text = " ".join(str(part) for part in text)
    text = " ".join(str(text or "").split())
    for pattern, replacement in MARKUP:
        text = pattern.sub(replacement, text)
    return text.replace("|", "\\|")


def type_cell(option: dict) -> str:
    kind = option.get("type", "str")
    if kind == "list" and option.get("elements"):
        return f"list of {option['elements']}"
    return kind


def default_cell(option: dict) -> str:
    if option.get("required"):
        return "*required*"
    if "default" not in option:
        return ""
    value = option["default"]
    if isinstance(value, str) and option.get("type") in ("list", "dict"):
        # A string cannot be a list's or dict's value: the spec describes a computed default.
        return f"*{markdown(value)}*"
    if isinstance(value, str):
        return f"`{value}`".replace("|", "\\|") if value else '`""`'
    return f"`{json.dumps(value)}`".replace("|", "\\|")


def description_cell(option: dict) -> str:
    text = markdown(option.get("description", ""))
    if option.get("choices"):
        choices = ", ".join(f"`{json.dumps(c) if not isinstance(c, str) else c}`" for c in option["choices"])
        text = f"{text} One of: {choices}.".strip()
    return text


def rows(options: dict, prefix: str = "") -> list[str]:
    """Table rows for options, suboptions after their parent (`parent[].child` for lists)."""
    lines = []
    for name, option in options.items():
        option = option or {}
        full = prefix + name
        lines.append(f"| `{full}` | {type_cell(option)} | {default_cell(option)} | {description_cell(option)} |")
        if option.get("options"):
            child_prefix = full + ("[]." if option.get("type") == "list" else ".")
            lines.extend(rows(option["options"], child_prefix))
    return lines


def table(specs: dict[str, dict], key: str) -> str:
    """The Markdown table for one role entry point (no markers)."""
    role, entry_point = split_key(key)
    if role not in specs:
        raise SpecError(f"{key}: no role {role!r} with meta/argument_specs.yml")
    if entry_point not in specs[role]:
        raise SpecError(f"{key}: role {role!r} has no entry point {entry_point!r}")
    options = specs[role][entry_point].get("options") or {}
    if not options:
        return "This entry point takes no variables.\n"
    header = ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
    return "\n".join(header + rows(options)) + "\n"


def block(specs: dict[str, dict], key: str) -> str:
    return f"{BEGIN.format(key)}\n{table(specs, key)}{END.format(key)}"


def check(readme: str, specs: dict[str, dict], exclude: set[str]) -> list[str]:
    """Problems with the README's blocks; empty when they match the specs."""
    problems = []
    markers = [(m.group(1), m.group(2)) for m in MARKER_RE.finditer(readme)]
    blocks = {m.group("key"): m.group("body") for m in BLOCK_RE.finditer(readme)}
    for kind, key in markers:
        if key not in blocks:
            problems.append(f"{key}: {kind} marker without its matching {'END' if kind == 'BEGIN' else 'BEGIN'}")
    for key, body in blocks.items():
        try:
            wanted = table(specs, key)
        except SpecError as exc:
            problems.append(str(exc))
            continue
        if body != wanted:
            diff = difflib.unified_diff(
                body.splitlines(), wanted.splitlines(), f"README ({key})", f"argument_specs ({key})", lineterm="")
            problems.append(f"{key}: table differs from the argument specs\n" + "\n".join(diff))
    documented = {split_key(key)[0] for key in blocks}
    for role in sorted(set(specs) - documented - exclude):
        problems.append(f"{role}: no '{BEGIN.format(role)}' block in the README")
    return problems


def update(readme: str, specs: dict[str, dict]) -> str:
    """The README with every block regenerated from the specs."""
    return BLOCK_RE.sub(lambda m: block(specs, m.group("key")), readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roles", nargs="*", help="roles (or role.entry_point) to print; default: all")
    parser.add_argument("--roles-dir", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parents[2] / "roles")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="README", type=pathlib.Path)
    mode.add_argument("--update", metavar="README", type=pathlib.Path)
    parser.add_argument("--exclude", action="append", default=[], metavar="ROLE",
                        help="internal role that needs no README block (repeatable)")
    args = parser.parse_args(argv)

    specs = load_specs(args.roles_dir)
    readme = args.check or args.update
    if readme and not readme.is_file():
        print(f"role-vars-table: {readme} does not exist", file=sys.stderr)
        return 1
    try:
        if args.check:
            problems = check(args.check.read_text(encoding="utf-8"), specs, set(args.exclude))
            for problem in problems:
                print(f"{args.check}: {problem}", file=sys.stderr)
            if not problems:
                print(f"{args.check}: role variable tables match the argument specs")
            return 1 if problems else 0
        if args.update:
            text = args.update.read_text(encoding="utf-8")
            new = update(text, specs)
            if new != text:
                args.update.write_text(new, encoding="utf-8")
                print(f"{args.update}: role variable tables updated")
            return 0
        keys = args.roles or [role for role in specs if role not in args.exclude]
        print("\n\n".join(block(specs, key) for key in keys))
        return 0
    except SpecError as exc:
        print(f"role-vars-table: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
