# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/architecture.md stays true to the code where it lists things: the paths it names exist,
it names every role template, and its list of render outputs is what the render entry point writes."""

from __future__ import annotations

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
ROOMS = ("roles/", "plugins/", "playbooks/", "tests/", "tools/", "docs/", "inventories/", "molecule/", "meta/")


def _backticked():
    return re.findall(r"`([^`\s]+)`", DOC)


def test_every_path_the_page_names_exists():
    paths = [p.rstrip("/") for p in _backticked() if p.startswith(ROOMS) and "<" not in p and "*" not in p]
    assert paths, "the page names no paths"
    # meta/argument_specs.yml is each role's.
    assert [p for p in paths if not (REPO / p).exists() and not list(REPO.glob("roles/*/" + p))] == []


def test_the_page_names_every_template_of_the_roles():
    templates = {p.relative_to(REPO).as_posix() for p in REPO.glob("roles/*/templates/*") if p.is_file()}
    assert templates and templates <= set(_backticked())


def test_the_render_outputs_it_lists_are_the_files_render_writes():
    paragraph = DOC[DOC.index("**`render` is the public way"):]
    paragraph = paragraph[:paragraph.index("into a directory")]
    listed = {name for name in re.findall(r"`([^`]+)`", paragraph) if "." in name and "/" not in name}
    # What the golden cases checked in (every render output appears in some case), and the derived
    # file golden.py validates without checking it in.
    rendered = {p.name for p in (REPO / "tests" / "golden" / "expected").glob("*/*")} | {"envoy-static.yaml"}
    assert listed == rendered
