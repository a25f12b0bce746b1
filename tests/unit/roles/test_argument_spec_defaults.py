# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's settings have one home, defaults/main.yml: each default its argument spec shows
(ansible-doc, the README's tables) is that value, in every entry point that declares the option."""

from __future__ import annotations

import pathlib

import pytest
import yaml

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"


def _load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


CASES = []
for role in sorted(p for p in ROLES.iterdir() if (p / "meta" / "argument_specs.yml").is_file()):
    defaults = _load(role / "defaults" / "main.yml") or {}
    specs = _load(role / "meta" / "argument_specs.yml")["argument_specs"]
    for entry, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            CASES.append(pytest.param(defaults, name, option, id="%s.%s.%s" % (role.name, entry, name)))


@pytest.mark.parametrize("defaults,name,option", CASES)
def test_a_documented_default_is_the_one_in_defaults_main(defaults, name, option):
    if name not in defaults:
        assert "default" not in option, "%s documents a default that defaults/main.yml does not set" % name
        return
    value = defaults[name]
    if isinstance(value, str) and "{{" in value:
        # Computed from the inventory: the spec describes it in words, and only as a string.
        assert "default" not in option or isinstance(option["default"], str), name
        return
    assert "default" in option and option["default"] == value, (name, option.get("default"), value)
