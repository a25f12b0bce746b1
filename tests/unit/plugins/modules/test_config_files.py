"""tproxy.envoy.config_files: whole files, validated before they replace anything."""

from __future__ import annotations

from ansible_collections.tproxy.envoy.plugins.modules import config_files
from ansible_collections.tproxy.envoy.tests.unit.plugins.modules.module_runner import run


def test_files_are_written_once_with_their_mode_and_missing_directories(tmp_path, capsys):
    spec = {'files': [{'path': str(tmp_path / 'new/a.yaml'), 'content': 'a: 1\n', 'mode': '0600'}]}
    rc, result = run(config_files, capsys, spec)
    assert rc == 0 and result['changed'] and result['files'][0]['changed']
    assert (tmp_path / 'new/a.yaml').read_text() == 'a: 1\n'
    assert oct((tmp_path / 'new/a.yaml').stat().st_mode & 0o777) == '0o600'
    rc, again = run(config_files, capsys, spec)
    assert rc == 0 and not again['changed']


def test_a_rejected_file_stops_the_run_and_leaves_it_and_the_later_files_untouched(tmp_path, capsys):
    (tmp_path / 'a.yaml').write_text('old\n')
    rc, result = run(config_files, capsys, {'files': [
        {'path': str(tmp_path / 'a.yaml'), 'content': 'new\n', 'validate': 'grep -q valid %s'},
        {'path': str(tmp_path / 'b.yaml'), 'content': 'b\n'}]})
    assert rc == 1 and 'a.yaml was not written' in result['msg'] and 'grep -q valid' in result['msg'], result
    assert (tmp_path / 'a.yaml').read_text() == 'old\n' and not (tmp_path / 'b.yaml').exists()
    assert [p.name for p in tmp_path.iterdir()] == ['a.yaml']  # no candidate left behind


def test_backup_keeps_the_replaced_file_and_absent_paths_are_removed(tmp_path, capsys):
    (tmp_path / 'lds.yaml').write_text('v1\n')
    (tmp_path / 'logrotate').write_text('x\n')
    rc, result = run(config_files, capsys, {
        'files': [{'path': str(tmp_path / 'lds.yaml'), 'content': 'v2\n', 'validate': 'grep -q v2 %s', 'backup': True}],
        'absent': [str(tmp_path / 'logrotate'), str(tmp_path / 'never-there')]})
    assert rc == 0 and result['removed'] == [str(tmp_path / 'logrotate')]
    backup = result['files'][0]['backup_file']
    assert open(backup).read() == 'v1\n' and (tmp_path / 'lds.yaml').read_text() == 'v2\n'


def test_check_mode_reports_the_diff_and_writes_nothing(tmp_path, capsys):
    (tmp_path / 'a.yaml').write_text('old\n')
    rc, result = run(config_files, capsys, {'files': [{'path': str(tmp_path / 'a.yaml'), 'content': 'new\n'}],
                                            'absent': [str(tmp_path / 'a.yaml')]}, check_mode=True, diff=True)
    assert rc == 0 and result['changed'] and (tmp_path / 'a.yaml').read_text() == 'old\n'
    assert result['diff'][0]['before'] == 'old\n' and result['diff'][0]['after'] == 'new\n'


def test_an_absent_directory_goes_with_everything_in_it(tmp_path, capsys):
    (tmp_path / 'envoy/sub').mkdir(parents=True)
    (tmp_path / 'envoy/sub/lds.yaml').write_text('x\n')
    rc, result = run(config_files, capsys, {'absent': [str(tmp_path / 'envoy')]})
    assert rc == 0 and result['changed'] and not (tmp_path / 'envoy').exists()
