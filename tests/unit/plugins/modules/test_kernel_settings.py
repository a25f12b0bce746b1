"""tproxy.envoy.kernel_settings against a directory standing in for /proc/sys."""

from __future__ import annotations

import json

import pytest

from ansible_collections.tproxy.envoy.plugins.modules import kernel_settings
from ansible_collections.tproxy.envoy.tests.unit.plugins.modules.module_runner import run

SETTINGS = {'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 2}


@pytest.fixture
def host(tmp_path):
    proc = tmp_path / 'proc'
    for key, value in {'net.ipv4.ip_forward': '0', 'net.ipv4.conf.all.rp_filter': '1'}.items():
        path = proc / key.replace('.', '/')
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + '\n')
    return tmp_path


def args(host, **extra):
    return dict({'settings': SETTINGS, 'file': str(host / 'etc/sysctl.d/60-x.conf'),
                 'saved': str(host / 'state/before.json'), 'proc_root': str(host / 'proc')}, **extra)


def live(host, key):
    return (host / 'proc' / key.replace('.', '/')).read_text().strip()


def test_present_keeps_the_first_values_writes_the_file_and_sets_what_differs(host, capsys):
    rc, result = run(kernel_settings, capsys, args(host))
    assert rc == 0 and result['changed'], result
    assert result['set'] == {'net.ipv4.ip_forward': '1', 'net.ipv4.conf.all.rp_filter': '2'}
    assert json.loads((host / 'state/before.json').read_text()) == {
        'net.ipv4.conf.all.rp_filter': '1', 'net.ipv4.ip_forward': '0'}
    assert (host / 'etc/sysctl.d/60-x.conf').read_text() == 'net.ipv4.ip_forward=1\nnet.ipv4.conf.all.rp_filter=2\n'
    assert (live(host, 'net.ipv4.ip_forward'), live(host, 'net.ipv4.conf.all.rp_filter')) == ('1', '2')
    rc, again = run(kernel_settings, capsys, args(host))
    assert rc == 0 and not again['changed'] and again['set'] == {}, again
    # The values of the first run stay saved: a second run found ours.
    assert json.loads((host / 'state/before.json').read_text())['net.ipv4.ip_forward'] == '0'


def test_check_mode_reports_and_changes_nothing(host, capsys):
    rc, result = run(kernel_settings, capsys, args(host), check_mode=True, diff=True)
    assert rc == 0 and result['changed'] and result['set']['net.ipv4.ip_forward'] == '1'
    assert live(host, 'net.ipv4.ip_forward') == '0'
    assert not (host / 'state').exists() and not (host / 'etc').exists()
    headers = [entry.get('before_header') for entry in result['diff']]
    assert str(host / 'etc/sysctl.d/60-x.conf') in headers and 'kernel parameters' in headers


def test_restored_puts_back_the_saved_values_and_tolerates_none_saved(host, capsys):
    run(kernel_settings, capsys, args(host))
    rc, result = run(kernel_settings, capsys, {'saved': str(host / 'state/before.json'), 'state': 'restored',
                                               'proc_root': str(host / 'proc')})
    assert rc == 0 and result['changed'] and live(host, 'net.ipv4.ip_forward') == '0'
    assert live(host, 'net.ipv4.conf.all.rp_filter') == '1'
    rc, result = run(kernel_settings, capsys, {'saved': str(host / 'nothing.json'), 'state': 'restored',
                                               'proc_root': str(host / 'proc')})
    assert rc == 0 and not result['changed']


def test_a_parameter_the_kernel_lacks_is_named_in_the_error(host, capsys):
    rc, result = run(kernel_settings, capsys, args(host, settings={'net.ipv6.conf.all.forwarding': 1}))
    assert rc == 1 and 'net.ipv6.conf.all.forwarding' in result['msg'], result


def test_a_name_that_leaves_proc_sys_is_refused(host, capsys):
    rc, result = run(kernel_settings, capsys, args(host, settings={'../../etc/passwd': 1}))
    assert rc == 1 and 'not a parameter name' in result['msg'], result
