# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/scripts/role-vars-table.py: README variable tables generated from, and checked against, argument specs."""

from __future__ import annotations

import importlib.util
import pathlib
import textwrap

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = REPO / "tools" / "scripts" / "role-vars-table.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("role_vars_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rvt = _load_script()

ROUTER_SPEC = """\
---
argument_specs:
  main: &main
    short_description: Router
    options:
      router_proxy_port:
        type: int
        default: 4999
        description: Port of the C(transparent) listener.
      router_intercept_ports:
        type: list
        elements: int
        default: [80]
        description:
          - Ports handed to Envoy.
          - At least one.
      router_envoy_log_level:
        type: str
        choices: [debug, info]
        default: info
        description: Log level.
      router_match:
        type: str
        default: "a|b"
        description: Pipes must not split the cell (a|b).
      router_forward_sources:
        type: list
        elements: str
        default: the inventory's C(clients)
        description: Computed default.
  validate: *main
  teardown:
    short_description: Remove it
    options: {}
"""

CLIENT_SPEC = """\
---
argument_specs:
  main:
    options:
      client_routes:
        type: list
        elements: dict
        default: []
        description: Routes.
        options:
          dest:
            type: str
            required: true
            description: Destination.
"""


@pytest.fixture(name="roles_dir")
def fixture_roles_dir(tmp_path):
    """A roles/ tree with router and client specs, and an internal role."""
    for role, text in (("router", ROUTER_SPEC), ("client", CLIENT_SPEC), ("internal", CLIENT_SPEC)):
        meta = tmp_path / "roles" / role / "meta"
        meta.mkdir(parents=True)
        (meta / "argument_specs.yml").write_text(text, encoding="utf-8")
    (tmp_path / "roles" / "nospec" / "tasks").mkdir(parents=True)
    return tmp_path / "roles"


def _readme(roles_dir, keys, before="# Title\n\nIntro.\n\n", after="\n\nMore text.\n"):
    """A README whose blocks are freshly generated (what --update would write)."""
    specs = rvt.load_specs(roles_dir)
    return before + "\n\n".join(rvt.block(specs, key) for key in keys) + after


def _row(table, name):
    return next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))


def test_roles_without_specs_are_not_listed(roles_dir):
    assert sorted(rvt.load_specs(roles_dir)) == ["client", "internal", "router"]


def test_table_has_one_row_per_option_in_spec_order(roles_dir):
    table = rvt.table(rvt.load_specs(roles_dir), "router")
    names = [line.split("`")[1] for line in table.splitlines()[2:]]
    spec_options = yaml.safe_load(ROUTER_SPEC)["argument_specs"]["main"]["options"]
    assert names == list(spec_options)


def test_row_shows_type_default_and_description_with_markup_converted(roles_dir):
    table = rvt.table(rvt.load_specs(roles_dir), "router")
    assert _row(table, "router_proxy_port") == (
        "| `router_proxy_port` | int | `4999` | Port of the `transparent` listener. |")
    assert _row(table, "router_intercept_ports") == (
        "| `router_intercept_ports` | list of int | `[80]` | Ports handed to Envoy. At least one. |")


def test_choices_are_listed(roles_dir):
    row = _row(rvt.table(rvt.load_specs(roles_dir), "router"), "router_envoy_log_level")
    assert row.endswith("Log level. One of: `debug`, `info`. |")


def test_pipes_are_escaped_so_the_row_keeps_four_cells(roles_dir):
    row = _row(rvt.table(rvt.load_specs(roles_dir), "router"), "router_match")
    assert row.replace("\\|", "").count("|") == 5


def test_string_default_of_a_list_is_shown_as_prose(roles_dir):
    row = _row(rvt.table(rvt.load_specs(roles_dir), "router"), "router_forward_sources")
    assert "| *the inventory's `clients`* |" in row


def test_suboptions_follow_their_list_and_required_is_marked(roles_dir):
    table = rvt.table(rvt.load_specs(roles_dir), "client")
    lines = table.splitlines()
    assert lines[2].startswith("| `client_routes` |")
    assert lines[3] == "| `client_routes[].dest` | str | *required* | Destination. |"


def test_entry_point_without_options(roles_dir):
    assert rvt.table(rvt.load_specs(roles_dir), "router.teardown") == "This entry point takes no variables.\n"


def test_unknown_role_or_entry_point_is_an_error(roles_dir):
    specs = rvt.load_specs(roles_dir)
    with pytest.raises(rvt.SpecError, match="no role 'web'"):
        rvt.table(specs, "web")
    with pytest.raises(rvt.SpecError, match="no entry point 'stop'"):
        rvt.table(specs, "router.stop")


def test_check_passes_on_freshly_generated_readme(roles_dir):
    readme = _readme(roles_dir, ["router", "client", "router.teardown"])
    assert rvt.check(readme, rvt.load_specs(roles_dir), exclude={"internal"}) == []


def test_check_reports_a_changed_default(roles_dir):
    readme = _readme(roles_dir, ["router", "client"])
    spec_file = roles_dir / "router" / "meta" / "argument_specs.yml"
    spec_file.write_text(ROUTER_SPEC.replace("default: 4999", "default: 5000"), encoding="utf-8")
    problems = rvt.check(readme, rvt.load_specs(roles_dir), exclude={"internal"})
    assert len(problems) == 1
    assert problems[0].startswith("router: table differs")
    assert "-| `router_proxy_port` | int | `4999` |" in problems[0]
    assert "+| `router_proxy_port` | int | `5000` |" in problems[0]


def test_check_reports_a_new_option_missing_from_the_readme(roles_dir):
    readme = _readme(roles_dir, ["router", "client"])
    spec_file = roles_dir / "client" / "meta" / "argument_specs.yml"
    spec = yaml.safe_load(CLIENT_SPEC)
    new_option = {"type": "bool", "default": False, "description": "New."}
    spec["argument_specs"]["main"]["options"]["client_extra"] = new_option
    spec_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    problems = rvt.check(readme, rvt.load_specs(roles_dir), exclude={"internal"})
    assert [p.split(":")[0] for p in problems] == ["client"]
    assert "+| `client_extra` | bool | `false` | New. |" in problems[0]


def test_check_reports_a_hand_edited_table(roles_dir):
    readme = _readme(roles_dir, ["router", "client"]).replace("Ports handed to Envoy.", "Ports.")
    problems = rvt.check(readme, rvt.load_specs(roles_dir), exclude={"internal"})
    assert len(problems) == 1 and problems[0].startswith("router: table differs")


def test_check_reports_a_role_without_block_unless_excluded(roles_dir):
    readme = _readme(roles_dir, ["router"])
    specs = rvt.load_specs(roles_dir)
    assert rvt.check(readme, specs, exclude={"internal"}) == [
        "client: no '<!-- BEGIN role vars: client -->' block in the README"]
    assert rvt.check(readme, specs, exclude={"internal", "client"}) == []


def test_check_reports_unknown_role_and_unpaired_marker(roles_dir):
    specs = rvt.load_specs(roles_dir)
    readme = _readme(roles_dir, ["router", "client"])
    readme += "<!-- BEGIN role vars: web -->\n| x |\n<!-- END role vars: web -->\n"
    readme += "<!-- BEGIN role vars: client.teardown -->\n"
    problems = rvt.check(readme, specs, exclude={"internal"})
    assert "web: no role 'web' with meta/argument_specs.yml" in problems
    assert "client.teardown: BEGIN marker without its matching END" in problems


def test_update_rewrites_only_the_blocks(roles_dir):
    good = _readme(roles_dir, ["router", "client"])
    stale = good.replace("`4999`", "`1`").replace("Destination.", "Old.")
    updated = rvt.update(stale, rvt.load_specs(roles_dir))
    assert updated == good


def test_main_check_exit_codes(roles_dir, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(_readme(roles_dir, ["router", "client"]), encoding="utf-8")
    argv = ["--roles-dir", str(roles_dir), "--exclude", "internal", "--check", str(readme)]
    assert rvt.main(argv) == 0
    readme.write_text(readme.read_text(encoding="utf-8").replace("`[80]`", "`[8080]`"), encoding="utf-8")
    assert rvt.main(argv) == 1
    assert "router: table differs" in capsys.readouterr().err


def test_main_update_then_check(roles_dir, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(textwrap.dedent("""\
        # Roles
        <!-- BEGIN role vars: router -->
        <!-- END role vars: router -->
        <!-- BEGIN role vars: client -->
        stale
        <!-- END role vars: client -->
        """), encoding="utf-8")
    base = ["--roles-dir", str(roles_dir), "--exclude", "internal"]
    assert rvt.main(base + ["--check", str(readme)]) == 1
    assert rvt.main(base + ["--update", str(readme)]) == 0
    assert rvt.main(base + ["--check", str(readme)]) == 0
    assert "| `router_proxy_port` | int | `4999` |" in readme.read_text(encoding="utf-8")


def test_real_roles_render_every_option(capsys):
    """Every option of every real role's main entry point appears in the printed tables."""
    assert rvt.main(["--roles-dir", str(REPO / "roles")]) == 0
    out = capsys.readouterr().out
    for spec_file in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))["argument_specs"]
        role = spec_file.parts[-3]
        assert f"<!-- BEGIN role vars: {role} -->" in out
        for option in spec["main"].get("options") or {}:
            assert f"| `{option}` |" in out
