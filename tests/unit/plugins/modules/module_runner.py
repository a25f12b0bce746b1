"""Run a module's main() in this process and read the JSON it prints."""

from __future__ import annotations

import json

import pytest

from ansible_collections.tproxy.envoy.tests.unit.compat.module_args import patch_module_args


def run(module, capsys, args, check_mode=False, diff=False):
    """(exit code, result) of module.main() with these arguments."""
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    code, result = exit_info.value.code, json.loads(capsys.readouterr().out)
    assert bool(code) == bool(result.get('failed')), 'exit code and failed flag disagree'
    return code, result


def result_of(module, capsys, args, **kwargs):
    """The result alone (run's checks included)."""
    return run(module, capsys, args, **kwargs)[1]
