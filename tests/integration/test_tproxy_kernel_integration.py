# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs the tproxy_kernel integration target for real with ansible-playbook on localhost.

The target (tests/integration/targets/tproxy_kernel) checks this host with the module and then
fake kernels made with the module's ``root`` option. The collection is made visible through a
temporary ansible_collections/tproxy/envoy symlink to this checkout. The play's JSON report is
checked task by task, by name: every task of the target ran once, each named assertion passed,
and the one failure is the expected one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TARGET = 'tproxy_kernel'
TASKS = REPO / 'tests' / 'integration' / 'targets' / TARGET / 'tasks' / 'main.yml'
# The module must refuse the fake kernel without TPROXY; the target ignores that error and asserts it.
EXPECTED_FAILURE = 'Check TPROXY support on the kernel without it'
# Each behaviour the target proves, by the name of the assertion that proves it.
ASSERTIONS = (
    'Assert this host is supported and every component is present',
    "Assert this host's iptables and ip6tables know TPROXY and the socket match",
    'Assert the second look has nothing left to load',
    'Assert the failure lists every missing piece and its fix',
    'Assert the verdict is usable in when',
    'Assert check mode would load every loadable part',
)


def task_names(tasks):
    """Names of the tasks in a task list, blocks flattened (a block itself reports nothing)."""
    names = []
    for task in tasks:
        if 'block' in task:
            for part in ('block', 'rescue', 'always'):
                names += task_names(task.get(part) or [])
        else:
            names.append(task['name'])
    return names


def ansible_playbook():
    # Prefer the one installed beside the Python running the tests (the project's venv).
    beside = Path(sys.executable).with_name('ansible-playbook')
    found = str(beside) if beside.exists() else shutil.which('ansible-playbook')
    if not found:
        pytest.fail('ansible-playbook not found next to %s or on PATH' % sys.executable)
    return found


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    """The JSON report of the target played on localhost (once for every test of this file)."""
    tmp_path = tmp_path_factory.mktemp('target')
    collections_path = tmp_path / 'collections'
    (collections_path / 'ansible_collections' / 'tproxy').mkdir(parents=True)
    (collections_path / 'ansible_collections' / 'tproxy' / 'envoy').symlink_to(REPO)
    playbook = tmp_path / 'run_target.yml'
    playbook.write_text(
        '- name: Run the %s integration target\n'
        '  hosts: localhost\n'
        '  gather_facts: false\n'
        '  roles:\n'
        '    - %s\n' % (TARGET, TARGET)
    )
    env = dict(os.environ,
               ANSIBLE_COLLECTIONS_PATH=str(collections_path),
               ANSIBLE_ROLES_PATH=str(REPO / 'tests' / 'integration' / 'targets'),
               ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
               ANSIBLE_NOCOLOR='1',
               ANSIBLE_RETRY_FILES_ENABLED='0')
    proc = subprocess.run(
        [ansible_playbook(), '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter=%s' % sys.executable, str(playbook)],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300, check=False,
    )
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        pytest.fail('no JSON report (rc=%d):\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr))
    result['rc'] = proc.returncode
    return result


def outcomes(report):
    """[(task name, localhost's result)] in the order the tasks ran (names without the role's prefix)."""
    [play] = report['plays']
    prefix = '%s : ' % TARGET
    return [(task['task']['name'].removeprefix(prefix), task['hosts']['localhost']) for task in play['tasks']]


def test_every_task_of_the_target_ran_once_in_order(report):
    wanted = task_names(yaml.safe_load(TASKS.read_text()))
    assert len(set(wanted)) == len(wanted), 'task names must be unique to be checked by name: %s' % wanted
    assert [name for name, _result in outcomes(report)] == wanted
    assert not [name for name, result in outcomes(report) if result.get('skipped')]


def test_only_the_expected_failure_happened_and_it_was_ignored(report):
    failed = [name for name, result in outcomes(report) if result.get('failed')]
    assert failed == [EXPECTED_FAILURE], json.dumps(report, indent=1)[-4000:]
    assert report['stats']['localhost']['ignored'] == 1
    assert report['stats']['localhost']['failures'] == 0
    assert report['rc'] == 0


@pytest.mark.parametrize('name', ASSERTIONS)
def test_named_assertion_passed(report, name):
    [result] = [result for task, result in outcomes(report) if task == name]
    assert not result.get('failed') and not result.get('skipped'), result
    items = result.get('results', [result])  # a looped assertion reports per item
    assert items and all(item.get('msg') == 'All assertions passed' for item in items), result
