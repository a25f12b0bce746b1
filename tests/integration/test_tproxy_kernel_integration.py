# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs the tproxy_kernel integration target for real with ansible-playbook on localhost.

The target (tests/integration/targets/tproxy_kernel) checks this host with the module and then
fake kernels made with the module's ``root`` option. The collection is made visible through a
temporary ansible_collections/tproxy/envoy symlink to this checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGET = 'tproxy_kernel'


def ansible_playbook():
    # Prefer the one installed beside the Python running the tests (the project's venv).
    beside = Path(sys.executable).with_name('ansible-playbook')
    found = str(beside) if beside.exists() else shutil.which('ansible-playbook')
    if not found:
        pytest.fail('ansible-playbook not found next to %s or on PATH' % sys.executable)
    return found


@pytest.fixture
def collections_path(tmp_path):
    namespace = tmp_path / 'collections' / 'ansible_collections' / 'tproxy'
    namespace.mkdir(parents=True)
    (namespace / 'envoy').symlink_to(REPO)
    return tmp_path / 'collections'


def test_tproxy_kernel_target_passes_on_this_host(tmp_path, collections_path):
    playbook = tmp_path / 'run_target.yml'
    playbook.write_text(
        '- hosts: localhost\n'
        '  gather_facts: false\n'
        '  roles:\n'
        '    - %s\n' % TARGET
    )
    env = dict(os.environ,
               ANSIBLE_COLLECTIONS_PATH=str(collections_path),
               ANSIBLE_ROLES_PATH=str(REPO / 'tests' / 'integration' / 'targets'),
               ANSIBLE_NOCOLOR='1',
               ANSIBLE_RETRY_FILES_ENABLED='0')
    proc = subprocess.run(
        [ansible_playbook(), '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter=%s' % sys.executable, str(playbook)],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300, check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    recap = re.search(r'localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)'
                      r'\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)', output)
    assert recap, output
    ok, _changed, unreachable, failed, skipped, rescued, ignored = (int(n) for n in recap.groups())
    # Every task ran (none skipped), and the only ignored error is the expected failure on the
    # fake kernel without TPROXY, which the next task asserts.
    assert (unreachable, failed, skipped, rescued, ignored) == (0, 0, 0, 0, 1), output
    assert ok >= 16, output
    assert 'Assert the failure lists every missing piece and its fix' in output
