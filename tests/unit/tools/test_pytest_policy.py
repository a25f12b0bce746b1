# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository's conftest.py: a skip under CI=true fails the run; --reverse-order reverses.

Each case runs pytest in a subprocess on a tiny test file, in a directory holding copies of the
repository's own conftest.py and pytest.ini (the files every test tree here runs under).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

TESTS = '''
import pytest

def test_passes():
    pass

def test_skips_while_running():
    pytest.skip("needs a unicorn")

@pytest.mark.skipif(True, reason="no unicorn here")
def test_skipped_by_marker():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False
'''

MODULE_SKIP = '''
import pytest

pytest.skip("the whole module needs a unicorn", allow_module_level=True)

def test_never_runs():
    pass
'''

ORDER = '''
def test_first():
    pass

def test_second():
    pass

def test_third():
    pass
'''


@pytest.fixture
def project(tmp_path):
    for name in ('conftest.py', 'pytest.ini'):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def run_pytest(project, files, ci=None, *args):
    for name, text in files.items():
        (project / name).write_text(text)
    # Nothing of the outer run: ansible-test units, for one, loads its plugins through PYTEST_PLUGINS.
    env = {k: v for k, v in os.environ.items() if k != 'CI' and not k.startswith('PYTEST_')}
    if ci is not None:
        env['CI'] = ci
    return subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-rA', *args],
                          cwd=str(project), env=env, capture_output=True, text=True, timeout=120, check=False)


def test_skips_pass_outside_ci(project):
    proc = run_pytest(project, {'test_cases.py': TESTS})
    assert proc.returncode == 0, proc.stdout
    assert '1 passed, 2 skipped, 1 xfailed' in proc.stdout, proc.stdout


@pytest.mark.parametrize('ci', ['false', ''])
def test_a_ci_variable_that_is_not_true_keeps_skips(project, ci):
    proc = run_pytest(project, {'test_cases.py': TESTS}, ci)
    assert proc.returncode == 0, proc.stdout
    assert '2 skipped' in proc.stdout, proc.stdout


@pytest.mark.parametrize('ci', ['true', '1'])
def test_under_ci_every_skip_fails_with_its_reason(project, ci):
    proc = run_pytest(project, {'test_cases.py': TESTS}, ci)
    assert proc.returncode == 1, proc.stdout
    assert 'FAILED test_cases.py::test_skips_while_running - skipped under CI=%s' % ci in proc.stdout
    assert 'needs a unicorn' in proc.stdout
    # A skipif marker acts in setup, so it is reported as an error of that test.
    assert 'ERROR test_cases.py::test_skipped_by_marker - skipped under CI=%s' % ci in proc.stdout
    assert 'no unicorn here' in proc.stdout
    assert 'skipped' not in proc.stdout.splitlines()[-1], proc.stdout
    # Neither a passing test nor an expected failure is affected.
    assert 'PASSED test_cases.py::test_passes' in proc.stdout
    assert 'XFAIL test_cases.py::test_expected_failure' in proc.stdout


def test_under_ci_a_module_skipped_as_a_whole_fails(project):
    proc = run_pytest(project, {'test_module_skip.py': MODULE_SKIP}, 'true')
    assert proc.returncode not in (0, 5), proc.stdout  # 5 would be "no tests ran"
    assert 'ERROR test_module_skip.py - skipped under CI=true' in proc.stdout, proc.stdout
    assert 'the whole module needs a unicorn' in proc.stdout


def test_under_ci_a_run_without_skips_passes(project):
    proc = run_pytest(project, {'test_order.py': ORDER}, 'true')
    assert proc.returncode == 0, proc.stdout
    assert '3 passed' in proc.stdout


def test_reverse_order_runs_the_tests_last_to_first(project):
    forward = run_pytest(project, {'test_order.py': ORDER}, None, '-v')
    backward = run_pytest(project, {'test_order.py': ORDER}, None, '-v', '--reverse-order')

    def order(proc):
        return [line.split('::')[1].split()[0] for line in proc.stdout.splitlines()
                if line.startswith('test_order.py::') and 'PASSED' in line]

    assert order(forward) == ['test_first', 'test_second', 'test_third']
    assert order(backward) == ['test_third', 'test_second', 'test_first']
