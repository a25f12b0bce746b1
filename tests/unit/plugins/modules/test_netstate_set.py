"""tproxy.envoy.netstate_set with a stand-in state script: a shell script that keeps its "live
state" in a file and logs each command, so the module's order of work is what is checked."""

from __future__ import annotations

import pytest

from ansible_collections.tproxy.envoy.plugins.modules import netstate_set
from ansible_collections.tproxy.envoy.tests.unit.plugins.modules.module_runner import run

# ITEMS is what this version owns; `check` compares the live file with it.
SCRIPT = '''#!/bin/sh
ITEMS='{items}'
LIVE={live}
echo "$*" >> {log}
case "$1" in
  list) printf '%s' "$ITEMS" ;;
  check) [ "$(cat "$LIVE" 2>/dev/null)" = "$(printf '%s' "$ITEMS")" ] && exit 0; echo "live differs"; exit 3 ;;
  apply) printf '%s' "$ITEMS" > "$LIVE" ;;
  remove) rm -f "$LIVE" ;;
  remove-items) cat > {removed} ;;
  *) exit 2 ;;
esac
'''


class Host:
    def __init__(self, root):
        self.root = root
        self.log = root / 'log'
        self.live = root / 'live'
        self.removed = root / 'removed'
        self.script = root / 'sbin/tproxy-envoy-test'
        self.unit = root / 'units/tproxy-envoy-test.service'
        self.rules = root / 'etc/tproxy-envoy/test.rules'
        self.script.parent.mkdir(parents=True)
        self.unit.parent.mkdir(parents=True)

    def script_text(self, items):
        return SCRIPT.format(items=''.join(i + '\n' for i in items), live=self.live, log=self.log, removed=self.removed)

    def args(self, items, rules='rules v1\n', **extra):
        return dict({
            'name': 'test', 'script': str(self.script), 'script_content': self.script_text(items),
            'files': [{'path': str(self.rules), 'content': rules}],
            'unit': str(self.unit), 'unit_content': '[Unit]\n',
            'systemd_dir': str(self.root / 'no-systemd'),
        }, **extra)

    def commands(self):
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


def test_first_run_writes_applies_and_a_second_changes_nothing(host, capsys):
    rc, result = run(netstate_set, capsys, host.args(['route\ta']))
    assert rc == 0 and result['changed'] and result['applied'] and result['drift'] == ['live differs'], result
    assert host.commands() == ['check', 'apply', 'list']
    assert host.rules.read_text() == 'rules v1\n' and host.live.read_text() == 'route\ta\n'
    assert oct(host.script.stat().st_mode & 0o777) == '0o755'
    rc, again = run(netstate_set, capsys, host.args(['route\ta']))
    assert rc == 0 and not again['changed'] and not again['applied'], again


def test_items_the_earlier_script_owned_are_removed_after_the_new_state_is_applied(host, capsys):
    run(netstate_set, capsys, host.args(['route\ta', 'route\tb']))
    host.log.unlink()
    rc, result = run(netstate_set, capsys, host.args(['route\ta', 'route\tc']))
    assert rc == 0 and result['removed_items'] == ['route\tb'], result
    # The earlier list is read with the earlier script, before it is replaced.
    assert host.commands() == ['list', 'check', 'apply', 'list', 'remove-items']
    assert host.removed.read_text() == 'route\tb\n'


def test_check_mode_of_a_new_set_reports_without_running_or_writing_anything(host, capsys):
    rc, result = run(netstate_set, capsys, host.args(['route\ta']), check_mode=True, diff=True)
    assert rc == 0 and result['changed'] and result['drift'] == ['state not applied yet'], result
    assert not host.script.exists() and not host.rules.exists() and host.commands() == []
    assert {d['after_header'] for d in result['diff']} == {str(host.rules), str(host.script), str(host.unit)}


def test_check_mode_on_an_installed_set_asks_the_script_and_applies_nothing(host, capsys):
    run(netstate_set, capsys, host.args(['route\ta']))
    host.live.write_text('drifted\n')
    host.log.unlink()
    rc, result = run(netstate_set, capsys, host.args(['route\ta']), check_mode=True)
    assert rc == 0 and result['changed'] and result['drift'] == ['live differs']
    assert 'apply' not in host.commands() and host.live.read_text() == 'drifted\n'


def test_a_rule_file_its_validator_rejects_is_not_written_and_the_error_names_it(host, capsys):
    args = host.args(['route\ta'])
    args['files'][0]['validate'] = 'false %s'
    rc, result = run(netstate_set, capsys, args)
    assert rc == 1 and str(host.rules) in result['msg'] and 'false %s' in result['msg'], result
    assert not host.rules.exists() and not host.script.exists() and host.commands() == []


def test_a_failing_apply_fails_the_task_with_the_scripts_words(host, capsys):
    args = host.args(['route\ta'])
    args['script_content'] = args['script_content'].replace('apply) printf', 'apply) echo "RTNETLINK: no" >&2; exit 1; printf')
    rc, result = run(netstate_set, capsys, args)
    assert rc == 1 and "'apply' failed" in result['msg'] and 'RTNETLINK: no' in result['msg'], result


def test_absent_runs_the_installed_scripts_remove_then_deletes_the_files(host, capsys):
    run(netstate_set, capsys, host.args(['route\ta']))
    rc, result = run(netstate_set, capsys, {'name': 'test', 'state': 'absent', 'script': str(host.script),
                                            'unit': str(host.unit), 'remove_paths': [str(host.rules)],
                                            'systemd_dir': str(host.root / 'no-systemd')})
    assert rc == 0 and result['changed'] and not host.live.exists()
    assert not host.script.exists() and not host.unit.exists() and not host.rules.exists()
    rc, again = run(netstate_set, capsys, {'name': 'test', 'state': 'absent', 'script': str(host.script),
                                           'unit': str(host.unit), 'systemd_dir': str(host.root / 'no-systemd')})
    assert rc == 0 and not again['changed']


def test_present_without_the_rendered_script_names_the_missing_option(host, capsys):
    args = host.args(['route\ta'])
    del args['script_content']
    rc, result = run(netstate_set, capsys, args)
    assert rc == 1 and 'script_content is required' in result['msg']
