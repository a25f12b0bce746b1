# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/scripts/run-targets.sh: targets in order, stop at the first failure, a timing table always;
more lanes (--beside) at the same time, each one's output in one block, a lane that waits for a target
of another (--after)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / 'tools' / 'scripts' / 'run-targets.sh'
# `make` itself, and how `make test` calls the script, are the Makefile's: read them from there.
MAKEFILE = (REPO / 'Makefile').read_text()


@pytest.fixture
def fake_make(tmp_path):
    """A `make` that logs each target and fails the ones listed in FAIL_TARGETS."""
    log = tmp_path / 'calls'
    make = tmp_path / 'make'
    make.write_text('#!/bin/sh\necho "$1" >> %s\necho "making $1"\n'
                    'case " $FAIL_TARGETS " in *" $1 "*) exit 2 ;; esac\n' % log)
    make.chmod(0o755)
    return make, log


def run(fake_make, *targets, fail=''):
    make, log = fake_make
    env = dict(os.environ, MAKE=str(make), FAIL_TARGETS=fail, RUN_TARGETS_LABEL='make test')
    proc = subprocess.run([str(SCRIPT), *targets], env=env, capture_output=True, text=True, timeout=60, check=False)
    calls = log.read_text().split() if log.exists() else []
    return proc, calls


def table(proc):
    """{target: (seconds, result)} from the summary printed at the end."""
    rows = {}
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('make test: seconds per target'))
    for line in lines[start + 2:]:
        match = re.match(r'^  (?:\| )?(\S+)\s+(\S+)\s+(.+)$', line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_runs_every_target_in_order_and_prints_each_time(fake_make):
    proc, calls = run(fake_make, 'unit', 'lint', 'sanity')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert calls == ['unit', 'lint', 'sanity']
    rows = table(proc)
    assert list(rows) == ['unit', 'lint', 'sanity', 'total']
    assert all(re.fullmatch(r'\d+\.\d', seconds) for seconds, _result in rows.values()), rows
    assert [result for _seconds, result in rows.values()] == ['ok', 'ok', 'ok', 'ok']
    # The table comes after the targets' own output.
    assert proc.stdout.rindex('making sanity') < proc.stdout.index('make test: seconds per target')


def test_stops_at_the_first_failure_and_still_prints_the_table(fake_make):
    proc, calls = run(fake_make, 'unit', 'lint', 'sanity', fail='lint')
    assert proc.returncode == 1
    assert calls == ['unit', 'lint']
    rows = table(proc)
    assert rows['unit'][1] == 'ok'
    assert rows['lint'][1] == 'FAIL' and rows['lint'][0] != '-'
    assert rows['sanity'] == ('-', 'not run')
    assert rows['total'][1] == 'FAIL (lint)'


def test_no_target_is_a_usage_error(fake_make):
    proc, calls = run(fake_make)
    assert proc.returncode == 2 and 'usage' in proc.stderr
    assert calls == []


def test_the_lane_beside_runs_at_the_same_time_and_its_output_stays_in_one_block(fake_make, tmp_path):
    # Each lane's first target waits for the other's to start: they only end if both run at once.
    make, log = fake_make
    make.write_text('#!/bin/sh\necho "$1" >> %s\necho "making $1"\ntouch %s/started-$1\n'
                    'case "$1" in lab) other=beside ;; beside) other=lab ;; *) other= ;; esac\n'
                    'if [ -n "$other" ]; then i=0; while [ ! -e %s/started-$other ]; do\n'
                    '  i=$((i + 1)); [ $i -lt 200 ] || exit 3; sleep 0.05; done; fi\n'
                    'case " $FAIL_TARGETS " in *" $1 "*) exit 2 ;; esac\n' % (log, tmp_path, tmp_path))
    proc, calls = run(fake_make, 'lab', 'lab2', '--beside', 'beside', 'beside2', 'beside3', fail='beside2')
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert sorted(calls) == ['beside', 'beside2', 'lab', 'lab2']
    rows = table(proc)
    assert rows['lab'][1] == rows['lab2'][1] == rows['beside'][1] == 'ok', rows
    assert rows['beside2'][1] == 'FAIL' and rows['beside3'] == ('-', 'not run')
    assert rows['total'][1] == 'FAIL (beside2)'
    # The lane beside is printed after the first lane's output, as one block, before the table.
    out = proc.stdout
    block = out.index('make test: the output of the targets beside (beside beside2 beside3)')
    assert out.rindex('making lab2') < block < out.index('making beside') < out.index('making beside2')
    assert out.index('making beside2') < out.index('make test: seconds per target')
    assert '| beside' in out


@pytest.fixture
def logging_make(fake_make, tmp_path):
    """A `make` that logs when each target starts and ends, and takes 0.3 s."""
    make, log = fake_make
    make.write_text('#!/bin/sh\necho "start $1" >> %s\nsleep 0.3\necho "end $1" >> %s\n'
                    'case " $FAIL_TARGETS " in *" $1 "*) exit 2 ;; esac\n' % (log, log))
    return make, log


def events(log):
    return log.read_text().splitlines()


def test_a_lane_after_a_target_starts_when_it_has_passed(logging_make):
    make, log = logging_make
    proc, _calls = run(logging_make, 'labtest', 'topo1', '--beside', '--after', 'labtest', 'topo2', 'fleet',
                       '--beside', 'unit')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    order = events(log)
    assert order.index('end labtest') < order.index('start topo2')
    # unit waits for nothing: it starts before labtest ends.
    assert order.index('start unit') < order.index('end labtest')
    assert list(table(proc)) == ['labtest', 'topo1', 'topo2', 'fleet', 'unit', 'total']
    assert proc.stdout.index('the output of the targets beside (topo2 fleet)') < proc.stdout.index(
        'the output of the targets beside (unit)')
    assert '| topo2' in proc.stdout and '| unit' in proc.stdout


@pytest.mark.parametrize('targets, fail', [
    (('labtest', 'topo1', '--beside', '--after', 'labtest', 'topo2'), 'labtest'),
    # Its target never runs: the first lane stopped before it.
    (('first', 'labtest', '--beside', '--after', 'labtest', 'topo2'), 'first'),
])
def test_a_lane_after_a_target_that_does_not_pass_does_not_run(logging_make, targets, fail):
    make, log = logging_make
    proc, calls = run(logging_make, *targets, fail=fail)
    assert proc.returncode == 1
    assert 'start topo2' not in events(log)
    rows = table(proc)
    assert rows['topo2'] == ('-', 'not run') and rows['total'][1] == 'FAIL (%s)' % fail
    assert 'did not pass: this lane does not run' in proc.stdout


@pytest.mark.parametrize('targets', [
    ('--beside', 'unit'), ('lab', '--beside'), ('lab', '--after', 'x', 'y'), ('lab', '--beside', '--after'),
    ('lab', '--beside', 'unit', '--after', 'lab'), ('lab', '--beside', '--after', 'nowhere', 'unit')])
def test_a_malformed_lane_is_a_usage_error(fake_make, targets):
    proc, calls = run(fake_make, *targets)
    assert proc.returncode == 2 and calls == [], proc.stdout + proc.stderr


def makefile_variable(name):
    match = re.search(r'^%s := ((?:.*\\\n)*.*)$' % name, MAKEFILE, re.M)
    assert match, name
    return match.group(1).replace('\\\n', ' ').split()


def test_make_test_and_make_check_run_their_lists_through_the_script():
    check = makefile_variable('CHECK_TARGETS')
    assert makefile_variable('BESIDE_TARGETS')[0] == '$(CHECK_TARGETS)'
    assert makefile_variable('TEST_TARGETS') == ['$(LAB_TARGETS)', '$(SECOND_LAB_TARGETS)', '$(BESIDE_TARGETS)']
    assert re.search(r'^check: .*\n\t.*tools/scripts/run-targets.sh \$\(CHECK_TARGETS\)$', MAKEFILE, re.M)
    assert re.search(r'^test: .*\n\t.*tools/scripts/run-targets.sh \$\(LAB_TARGETS\) \\\n'
                     r'\t +--beside --after lab-test \$\(SECOND_LAB_TARGETS\) --beside \$\(BESIDE_TARGETS\)$',
                     MAKEFILE, re.M)
    # Every listed target exists in the Makefile, and none is in two lanes.
    lab, second, beside = (makefile_variable('LAB_TARGETS'), makefile_variable('SECOND_LAB_TARGETS'),
                           check + makefile_variable('BESIDE_TARGETS')[1:])
    assert lab[0] == 'lab-test'
    assert len(set(lab) | set(second) | set(beside)) == len(lab) + len(second) + len(beside)
    for target in lab + second + beside:
        assert re.search(r'^%s:' % re.escape(target), MAKEFILE, re.M), target


def test_the_topology_halves_in_make_test_are_the_whole_of_topology_test():
    # topology-test-1 runs every module that topology-test-2 does not: only names of real modules may be listed.
    second = makefile_variable('TOPOLOGY_SECOND_HALF')
    modules = sorted(path.name for path in (REPO / 'tests' / 'topology').glob('test_*.py') if path.name != 'test_fleet.py')
    assert set(second) < set(modules), set(second) - set(modules)
    assert re.search(r'^topology-test-1: .*\n\t.*\$\(TOPOLOGY\) \$\(TOPOLOGY_SECOND_HALF:%=--ignore=tests/topology/%\)$',
                     MAKEFILE, re.M)
    assert re.search(r'^topology-test-2: .*\n(?:\t.*\n)*\t.*\$\(TOPOLOGY_SECOND_HALF:%=tests/topology/%\)$', MAKEFILE, re.M)
