# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The module end to end: fake commands first on PATH, a fake kernel tree, and a fake Docker
engine answering HTTP on a unix socket. Mocks only where a host cannot be made to fail."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import socketserver
import tempfile
import threading

import pytest

from ansible.module_utils import basic
from ansible.module_utils.facts.system.service_mgr import ServiceMgrFactCollector

from ansible_collections.tproxy.envoy.plugins.modules import host_probe
from ansible_collections.tproxy.envoy.tests.unit.plugins.modules import module_runner
from ansible_collections.tproxy.envoy.tests.unit.plugins.module_utils.fake_tproxy_host import (
    FakeIptables,
    FakeKernel,
    write_executable,
)

ENVOY = {'Id': 'f00d' * 16, 'Name': '/tproxy-envoy', 'State': {'Running': True, 'Status': 'running'}}


def result_of(capsys, args, **kwargs):
    return module_runner.result_of(host_probe, capsys, args, **kwargs)


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    """A directory first on PATH for fake commands."""
    path = tmp_path / 'bin'
    path.mkdir()
    monkeypatch.setenv('PATH', '%s:%s' % (path, os.environ['PATH']))
    return path


# --- tools, commands, paths ---------------------------------------------------------------------

def test_tools_give_the_path_found_or_null(bin_dir, capsys):
    write_executable(bin_dir / 'nft', '#!/bin/sh\n')
    result = result_of(capsys, {'tools': ['nft', 'tproxy-envoy-no-such-tool']})
    assert result['tools'] == {'nft': str(bin_dir / 'nft'), 'tproxy-envoy-no-such-tool': None}
    assert result['changed'] is False


def test_commands_run_without_a_shell_and_a_missing_program_is_empty(bin_dir, tmp_path, capsys):
    write_executable(bin_dir / 'rules', '#!/bin/sh\nprintf "%s\\n" "$@"\necho "LC_ALL=$LC_ALL" >&2\n')
    result = result_of(capsys, {'commands': {
        'rules': ['rules', 'a b', '$HOME', 100],
        'absent': ['tproxy-envoy-no-such-tool', 'list'],
        'script': [str(tmp_path / 'no-script'), 'list', '--json'],
    }})
    rules = result['commands']['rules']
    assert rules['rc'] == 0 and rules['missing'] is False
    assert rules['stdout_lines'] == ['a b', '$HOME', '100']  # no shell: no splitting, no expansion
    assert rules['stderr'].strip() == 'LC_ALL=C'
    assert rules['argv'][0] == str(bin_dir / 'rules')
    for name in ('absent', 'script'):
        assert result['commands'][name] == {'argv': result['commands'][name]['argv'], 'rc': None, 'stdout': '',
                                            'stdout_lines': [], 'stderr': '', 'missing': True, 'accepted': False}


def test_a_failing_command_fails_the_module_naming_it(bin_dir, capsys):
    write_executable(bin_dir / 'routes', '#!/bin/sh\necho "Error: something broke." >&2\nexit 2\n')
    write_executable(bin_dir / 'fine', '#!/bin/sh\necho ok\n')
    result = result_of(capsys, {'commands': {'routes': ['routes', 'show'], 'fine': ['fine']}})
    assert result['failed'] is True
    assert result['msg'] == 'routes (%s show) failed with rc 2: Error: something broke.' % (bin_dir / 'routes')
    assert result['commands']['fine']['stdout'] == 'ok\n'  # what was read is still returned


def test_ok_stderr_accepts_a_known_failure_and_only_that_one(bin_dir, capsys):
    write_executable(bin_dir / 'routes', '#!/bin/sh\necho "Error: ipv4: FIB table does not exist." >&2\nexit 2\n')
    args = {'commands': {'routes': ['routes']}, 'ok_stderr': {'routes': 'table does not exist'}}
    result = result_of(capsys, args)
    assert 'failed' not in result
    assert result['commands']['routes']['rc'] == 2 and result['commands']['routes']['accepted'] is True
    assert result['commands']['routes']['stdout'] == ''
    args['ok_stderr'] = {'routes': 'something else'}
    assert result_of(capsys, args)['failed'] is True


def test_a_program_that_cannot_run_fails_the_module(tmp_path, capsys):
    script = tmp_path / 'script'
    script.write_text('#!/bin/sh\n')  # not executable
    result = result_of(capsys, {'commands': {'own': [str(script), 'list']}})
    assert result['failed'] is True and result['msg'].startswith('own (%s list) could not run: ' % script)


@pytest.mark.parametrize('argv', [[], 'ip rule list', [['ip']]])
def test_a_command_that_is_not_an_argv_is_refused(capsys, argv):
    result = result_of(capsys, {'commands': {'rules': argv}})
    assert result['failed'] is True and result['msg'].startswith('commands.rules must be a non-empty list')


def test_ok_stderr_for_an_unknown_command_is_refused(capsys):
    result = result_of(capsys, {'commands': {}, 'ok_stderr': {'routes': 'x'}})
    assert result['failed'] is True and 'routes' in result['msg']


def test_paths_report_existence(tmp_path, capsys):
    (tmp_path / 'here').write_text('')
    result = result_of(capsys, {'paths': [str(tmp_path / 'here'), str(tmp_path / 'gone')]})
    assert result['paths'] == {str(tmp_path / 'here'): True, str(tmp_path / 'gone'): False}


def test_check_mode_reads_the_same_and_changes_nothing(bin_dir, capsys):
    write_executable(bin_dir / 'rules', '#!/bin/sh\necho 0:from all lookup local\n')
    result = result_of(capsys, {'commands': {'rules': ['rules']}}, check_mode=True)
    assert result['changed'] is False and result['commands']['rules']['stdout_lines'] == ['0:from all lookup local']


# --- links, service manager ---------------------------------------------------------------------

def test_links_are_the_interfaces_with_an_ipv4_address(bin_dir, capsys):
    links = [
        {'ifname': 'lo', 'addr_info': [{'family': 'inet', 'local': '127.0.0.1'}]},
        {'ifname': 'eth0', 'addr_info': [{'family': 'inet', 'local': '192.0.2.100'}]},
        {'ifname': 'lan-1', 'addr_info': [{'family': 'inet', 'local': '198.51.100.1'},
                                          {'family': 'inet', 'local': '198.51.100.2'}]},
        {'ifname': 'eth1', 'addr_info': []},
        {'ifname': 'eth2'},
    ]
    write_executable(bin_dir / 'ip', '#!/bin/sh\n[ "$*" = "-j -4 addr show" ] || exit 9\ncat <<"EOF"\n%s\nEOF\n'
                     % json.dumps(links))
    result = result_of(capsys, {'links': True})
    assert result['links'] == ['eth0', 'lan-1', 'lo']


def test_links_from_an_ip_without_json_fail_clearly(bin_dir, capsys):
    write_executable(bin_dir / 'ip', '#!/bin/sh\necho "1: lo    inet 127.0.0.1/8 scope host lo"\n')
    result = result_of(capsys, {'links': True})
    assert result['failed'] is True and 'not JSON' in result['msg']


def test_service_mgr_is_what_fact_gathering_says_and_a_fact(capsys):
    result = result_of(capsys, {'service_mgr': True})
    expected = ServiceMgrFactCollector().collect(module=_Module(),
                                                 collected_facts={'ansible_system': 'Linux'})['service_mgr']
    assert result['service_mgr'] == expected
    assert result['ansible_facts'] == {'ansible_service_mgr': expected}


class _Module:
    """What ServiceMgrFactCollector asks of a module, answered the way AnsibleModule would."""

    def get_bin_path(self, name):
        return shutil.which(name, path=os.environ['PATH'] + ':/sbin:/usr/sbin:/usr/local/sbin')

    def run_command(self, *args, **kwargs):  # only without /proc/1/comm
        raise AssertionError('the test host has /proc/1/comm')


# --- containers ---------------------------------------------------------------------------------

class _Engine(http.server.BaseHTTPRequestHandler):
    containers = {}

    def do_GET(self):  # noqa: N802  (http.server's name)
        name = self.path.removeprefix('/containers/').removesuffix('/json')
        if name == 'broken':
            self._answer(500, b'{"message": "the engine is broken"}')
        elif name in self.containers:
            self._answer(200, json.dumps(self.containers[name]).encode())
        else:
            self._answer(404, b'{"message": "No such container"}')

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # a unix socket has no client address to log
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def engine():
    """A fake Docker engine on a unix socket (a short path: sun_path holds 108 bytes)."""
    directory = tempfile.mkdtemp(prefix='probe', dir='/tmp')
    path = os.path.join(directory, 'docker.sock')
    _Engine.containers = {'tproxy-envoy': ENVOY}
    server = _UnixServer(path, _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()
    shutil.rmtree(directory)


def test_containers_are_read_from_the_engine_like_docker_container_info(engine, capsys):
    result = result_of(capsys, {'containers': ['tproxy-envoy', 'tproxy-httpbin'], 'docker_socket': engine})
    assert result['engine'] is True
    assert result['containers'] == {'tproxy-envoy': {'exists': True, 'container': ENVOY},
                                    'tproxy-httpbin': {'exists': False, 'container': None}}


def test_no_engine_socket_means_no_engine_and_no_container(tmp_path, capsys):
    result = result_of(capsys, {'containers': ['tproxy-envoy'], 'docker_socket': str(tmp_path / 'docker.sock')})
    assert result['engine'] is False
    assert result['containers'] == {'tproxy-envoy': {'exists': False, 'container': None}}


def test_an_engine_error_fails_the_module_naming_the_container(engine, capsys):
    result = result_of(capsys, {'containers': ['tproxy-envoy', 'broken'], 'docker_socket': engine})
    assert result['failed'] is True
    assert result['msg'] == ('the Docker engine at %s answered 500 to the inspection of container broken: '
                             '{"message": "the engine is broken"}' % engine)
    assert result['containers']['tproxy-envoy']['exists'] is True


def test_an_engine_socket_nobody_listens_on_fails_clearly(capsys):
    directory = tempfile.mkdtemp(prefix='probe', dir='/tmp')
    path = os.path.join(directory, 'docker.sock')
    try:
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)  # the file exists, no one accepts
        stale.close()
        result = result_of(capsys, {'containers': ['tproxy-envoy'], 'docker_socket': path})
    finally:
        shutil.rmtree(directory)
    assert result['failed'] is True and result['msg'].startswith('cannot reach the Docker engine at %s: ' % path)


def test_no_containers_asked_means_no_engine_question(capsys):
    result = result_of(capsys, {})
    assert result['containers'] == {} and 'engine' not in result


# --- TPROXY support -----------------------------------------------------------------------------

@pytest.fixture
def kernel(tmp_path, bin_dir):
    fake = FakeKernel(tmp_path / 'root')
    log = tmp_path / 'commands.log'
    write_executable(bin_dir / 'iptables', FakeIptables().script(log))
    write_executable(bin_dir / 'iptables-restore', '#!/bin/sh\n')
    write_executable(bin_dir / 'nft', '#!/bin/sh\necho "nftables v1.0.6 (Lester Gooch #5)"\n')
    write_executable(bin_dir / 'modprobe', '#!/bin/sh\necho "modprobe must not run" >&2\nexit 1\n')
    return fake


def test_tproxy_kernel_reports_builtin_support_with_nothing_to_load(kernel, capsys):
    kernel.builtin('nf_tproxy_ipv4', 'nf_socket_ipv4', 'xt_TPROXY', 'xt_socket')
    result = result_of(capsys, {'tproxy_kernel': {'backend': 'iptables', 'root': kernel.root}})
    report = result['tproxy_kernel']
    assert report['supported'] is True and report['loadable'] == [] and report['missing'] == []
    assert report['backend'] == 'iptables' and report['families'] == ['ipv4']
    assert set(c['state'] for c in report['components'].values()) == {'builtin'}
    assert report['userspace']['iptables']['tproxy_target'] is True
    assert report['msg'] == 'TPROXY support complete for iptables (ipv4); nothing loaded.'
    assert result['changed'] is False


def test_tproxy_kernel_names_what_is_loadable_and_loads_nothing(kernel, capsys):
    kernel.builtin('nf_tproxy_ipv4', 'nf_socket_ipv4')
    kernel.module_file('xt_TPROXY')
    kernel.loaded('xt_socket')
    report = result_of(capsys, {'tproxy_kernel': {'backend': 'iptables', 'root': kernel.root}})['tproxy_kernel']
    assert report['supported'] is True and report['loadable'] == ['xt_TPROXY']
    assert report['components']['xt_TPROXY']['state'] == 'loadable'


def test_tproxy_kernel_reports_what_is_missing_without_failing(kernel, capsys):
    kernel.builtin('nf_tproxy_ipv4', 'nf_socket_ipv4')
    result = result_of(capsys, {'tproxy_kernel': {'backend': 'iptables', 'root': kernel.root}})
    report = result['tproxy_kernel']
    assert 'failed' not in result and report['supported'] is False
    assert report['missing'] == ['xt_TPROXY', 'xt_socket']
    assert report['msg'].startswith('This host cannot do TPROXY with the iptables backend; 2 piece(s) missing:')
    assert 'CONFIG_NETFILTER_XT_TARGET_TPROXY' in report['msg']


def test_tproxy_kernel_auto_picks_iptables_when_iptables_restore_is_there(kernel, capsys):
    report = result_of(capsys, {'tproxy_kernel': {'root': kernel.root}})['tproxy_kernel']
    assert report['backend'] == 'iptables'


def test_tproxy_kernel_auto_picks_nftables_without_iptables_restore(kernel, capsys, monkeypatch):
    # The host running the tests may have iptables-restore in /usr/sbin, which get_bin_path searches too.
    real = basic.AnsibleModule.get_bin_path
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path',
                        lambda self, name, *a, **kw: None if name == 'iptables-restore' else real(self, name, *a, **kw))
    report = result_of(capsys, {'tproxy_kernel': {'root': kernel.root}})['tproxy_kernel']
    assert report['backend'] == 'nftables' and sorted(report['components']) == [
        'nf_socket_ipv4', 'nf_tproxy_ipv4', 'nft_socket', 'nft_tproxy']


def test_tproxy_kernel_needs_a_family(kernel, capsys):
    result = result_of(capsys, {'tproxy_kernel': {'families': [], 'root': kernel.root}})
    assert result['failed'] is True and 'families' in result['msg']
