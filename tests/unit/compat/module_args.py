"""patch_module_args for every ansible-core in meta/runtime.yml's range (ansible-core 2.19 ships it)."""

from __future__ import annotations

__all__ = ['patch_module_args']

try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core >= 2.19
except ImportError:  # ansible-core < 2.19: the module reads its arguments from basic._ANSIBLE_ARGS
    import contextlib
    import json
    from unittest import mock

    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args):
        with mock.patch.object(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode()):
            yield
