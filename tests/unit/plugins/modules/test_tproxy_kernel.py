# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The module end to end on fake kernel trees, with fake iptables/nft/modprobe first on PATH."""

from __future__ import annotations

import os

import pytest

from ansible.module_utils import basic

from ansible_collections.tproxy.envoy.plugins.modules import tproxy_kernel
from ansible_collections.tproxy.envoy.tests.unit.plugins.modules import module_runner
from ansible_collections.tproxy.envoy.tests.unit.plugins.module_utils.fake_tproxy_host import (
    MODULE_PATHS,
    FakeIptables,
    FakeKernel,
    write_executable,
)


IPTABLES_PARTS = ['nf_tproxy_ipv4', 'nf_socket_ipv4', 'xt_TPROXY', 'xt_socket']


class Host:
    """A fake kernel below tmp_path/root and fake commands in tmp_path/bin, first on PATH."""

    def __init__(self, tmp_path, monkeypatch, module_support=True):
        self.kernel = FakeKernel(tmp_path / 'root', module_support=module_support)
        self.bin = tmp_path / 'bin'
        self.bin.mkdir()
        self.command_log = tmp_path / 'commands.log'
        self.modprobe_log = tmp_path / 'modprobe.log'
        monkeypatch.setenv('PATH', '%s:%s' % (self.bin, os.environ['PATH']))
        self.iptables()
        self.iptables(FakeIptables('ip6tables'))
        write_executable(self.bin / 'nft', '#!/bin/sh\necho "nftables v1.0.6 (Lester Gooch #5)"\n')
        self.modprobe()

    def iptables(self, fake=None):
        fake = fake or FakeIptables()
        write_executable(self.bin / fake.command, fake.script(self.command_log))

    def modprobe(self, fail=(), register=True):
        """Records its arguments; "loads" by adding the name to the fake /proc/modules, like the kernel would."""
        proc_modules = self.kernel.path('proc/modules')
        script = '#!/bin/sh\necho "$*" >> %s\nfor name; do :; done\n' % self.modprobe_log
        for name in fail:
            script += 'if [ "$name" = %s ]; then echo "modprobe: ERROR: could not insert \'%s\'" >&2; exit 1; fi\n' % (
                name, name)
        if register:
            script += 'echo "$name 16384 0 - Live 0x0" >> %s\n' % proc_modules
        write_executable(self.bin / 'modprobe', script)

    def modprobe_calls(self):
        if not self.modprobe_log.exists():
            return []
        return self.modprobe_log.read_text().splitlines()

    def all_loadable(self, names):
        for name in names:
            self.kernel.module_file(name)


@pytest.fixture
def host(tmp_path, monkeypatch):
    return Host(tmp_path, monkeypatch)


def result_of(capsys, args, **kwargs):
    return module_runner.result_of(tproxy_kernel, capsys, args, **kwargs)


def test_builtin_kernel_without_module_support_is_supported_and_loads_nothing(tmp_path, monkeypatch, capsys):
    host = Host(tmp_path, monkeypatch, module_support=False)
    host.kernel.config(dict((name, 'y') for name in MODULE_PATHS))
    result = result_of(capsys, {'root': host.kernel.root, 'families': ['ipv4', 'ipv6']})
    assert result['supported'] is True and result['changed'] is False
    assert result['kernel']['module_support'] is False
    assert set(c['state'] for c in result['components'].values()) == {'builtin'}
    assert sorted(result['components']) == sorted(IPTABLES_PARTS + ['nf_tproxy_ipv6', 'nf_socket_ipv6'])
    assert result['loaded_modules'] == [] and result['missing'] == []
    assert host.modprobe_calls() == []


def test_loadable_components_are_loaded_with_modprobe(host, capsys):
    host.kernel.builtin('nf_socket_ipv4')
    host.kernel.loaded('xt_socket')
    host.all_loadable(['nf_tproxy_ipv4', 'xt_TPROXY'])
    root = host.kernel.root
    result = result_of(capsys, {'root': root})
    assert host.modprobe_calls() == ['--dirname %s --set-version %s -- %s' % (root, host.kernel.release, name)
                                     for name in ('nf_tproxy_ipv4', 'xt_TPROXY')]
    assert result['changed'] is True and result['supported'] is True
    assert result['loaded_modules'] == ['nf_tproxy_ipv4', 'xt_TPROXY']
    assert dict((n, c['state']) for n, c in result['components'].items()) == {
        'nf_tproxy_ipv4': 'loaded', 'nf_socket_ipv4': 'builtin', 'xt_TPROXY': 'loaded', 'xt_socket': 'loaded'}


def test_second_run_after_loading_changes_nothing(host, capsys):
    host.all_loadable(IPTABLES_PARTS)
    assert result_of(capsys, {'root': host.kernel.root})['changed'] is True
    second = result_of(capsys, {'root': host.kernel.root})
    assert second['changed'] is False and second['loaded_modules'] == []
    assert len(host.modprobe_calls()) == len(IPTABLES_PARTS)


def test_check_mode_reports_what_would_be_loaded_and_loads_nothing(host, capsys):
    host.all_loadable(IPTABLES_PARTS)
    result = result_of(capsys, {'root': host.kernel.root}, check_mode=True)
    assert host.modprobe_calls() == []
    assert result['changed'] is True and result['supported'] is True
    assert result['loaded_modules'] == IPTABLES_PARTS
    assert set(c['state'] for c in result['components'].values()) == {'loadable'}
    assert 'would load' in result['msg']


def test_check_mode_with_everything_present_is_unchanged(host, capsys):
    host.kernel.loaded(*IPTABLES_PARTS)
    result = result_of(capsys, {'root': host.kernel.root}, check_mode=True)
    assert result['changed'] is False and result['loaded_modules'] == []


def test_load_false_only_reports(host, capsys):
    host.all_loadable(IPTABLES_PARTS)
    result = result_of(capsys, {'root': host.kernel.root, 'load': False})
    assert host.modprobe_calls() == []
    assert result['changed'] is False and result['supported'] is True


def test_diff_shows_state_change(host, capsys):
    host.kernel.builtin('nf_tproxy_ipv4', 'nf_socket_ipv4', 'xt_socket')
    host.all_loadable(['xt_TPROXY'])
    result = result_of(capsys, {'root': host.kernel.root}, diff=True)
    assert result['diff'] == {'before': {'xt_TPROXY': 'loadable'}, 'after': {'xt_TPROXY': 'loaded'}}


def test_failed_modprobe_fails_naming_the_module(host, capsys):
    host.all_loadable(IPTABLES_PARTS)
    host.modprobe(fail=['xt_socket'])
    result = result_of(capsys, {'root': host.kernel.root})
    assert result['failed'] is True and result['supported'] is False
    assert result['missing'] == ['xt_socket']
    assert 'modprobe xt_socket failed (rc=1)' in result['msg']
    assert "could not insert 'xt_socket'" in result['msg']
    assert result['loaded_modules'] == ['nf_tproxy_ipv4', 'nf_socket_ipv4', 'xt_TPROXY']


def test_modprobe_success_is_checked_against_the_kernel(host, capsys):
    host.all_loadable(['xt_TPROXY'])
    host.kernel.loaded('nf_tproxy_ipv4', 'nf_socket_ipv4', 'xt_socket')
    host.modprobe(register=False)
    result = result_of(capsys, {'root': host.kernel.root})
    assert result['failed'] is True
    assert 'modprobe xt_TPROXY succeeded but' in result['msg']
    assert result['loaded_modules'] == []


@pytest.mark.parametrize('variant', ['nf_tables', 'legacy'])
def test_reports_iptables_variant_and_asks_in_the_c_locale(host, capsys, variant):
    host.kernel.loaded(*IPTABLES_PARTS)
    host.iptables(FakeIptables(variant=variant))
    result = result_of(capsys, {'root': host.kernel.root})
    info = result['userspace']['iptables']
    assert info['variant'] == variant and info['path'] == str(host.bin / 'iptables')
    assert info['tproxy_target'] is True and info['socket_match'] is True
    logged = host.command_log.read_text().splitlines()
    assert 'LANG=C -j TPROXY --help' in logged and 'LANG=C -m socket --help' in logged


def test_every_missing_piece_is_listed_in_one_failure(host, capsys):
    host.kernel.os_release('ubuntu', 'debian')
    host.kernel.loaded('nf_tproxy_ipv4', 'nf_socket_ipv4')
    host.iptables(FakeIptables(variant='legacy', tproxy=False, socket=False))
    host.iptables(FakeIptables('ip6tables', variant='legacy', tproxy=False))
    result = result_of(capsys, {'root': host.kernel.root, 'families': ['ipv4', 'ipv6']})
    assert result['failed'] is True and result['supported'] is False
    expected = ['nf_tproxy_ipv6', 'nf_socket_ipv6', 'xt_TPROXY', 'xt_socket',
                'ip6tables -j TPROXY', 'iptables -j TPROXY', 'iptables -m socket']
    assert result['missing'] == expected
    assert '7 piece(s) missing' in result['msg']
    for name in expected[:4]:
        assert '- %s (' % name in result['msg']
    assert 'install linux-modules-extra-%s' % host.kernel.release in result['msg']
    assert "%s does not know -j TPROXY" % (host.bin / 'iptables') in result['msg']
    assert "%s does not know -m socket" % (host.bin / 'iptables') in result['msg']
    assert 'Traceback' not in result['msg']
    assert host.modprobe_calls() == []


def test_fail_on_missing_false_returns_the_verdict(host, capsys):
    result = result_of(capsys, {'root': host.kernel.root, 'fail_on_missing': False})
    assert 'failed' not in result
    assert result['supported'] is False
    assert result['missing'] == IPTABLES_PARTS
    assert result['msg'].startswith('This host cannot do TPROXY')


def test_nftables_backend(host, capsys):
    host.kernel.builtin('nf_tproxy_ipv6', 'nf_socket_ipv6')
    host.all_loadable(['nft_tproxy'])
    host.kernel.loaded('nft_socket')
    result = result_of(capsys, {'root': host.kernel.root, 'backend': 'nftables', 'families': ['ipv6']})
    assert result['supported'] is True
    assert result['loaded_modules'] == ['nft_tproxy']
    assert result['userspace'] == {'nft': {'command': 'nft', 'path': str(host.bin / 'nft'), 'version': '1.0.6'}}


def test_kernel_without_module_support_never_calls_modprobe(tmp_path, monkeypatch, capsys):
    host = Host(tmp_path, monkeypatch, module_support=False)
    host.all_loadable(IPTABLES_PARTS)
    result = result_of(capsys, {'root': host.kernel.root})
    assert host.modprobe_calls() == []
    assert result['failed'] is True and result['missing'] == IPTABLES_PARTS
    assert 'kernel without module support' in result['msg']


def test_empty_family_list_is_refused(host, capsys):
    result = result_of(capsys, {'root': host.kernel.root, 'families': []})
    assert result['failed'] is True and 'families' in result['msg']


def test_unknown_family_is_refused_by_the_argument_spec(host, capsys):
    result = result_of(capsys, {'root': host.kernel.root, 'families': ['ipx']})
    assert result['failed'] is True and 'ipx' in result['msg']


def test_loadable_without_modprobe_says_install_kmod(host, capsys, monkeypatch):
    real = basic.AnsibleModule.get_bin_path
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path',
                        lambda self, name, *a, **kw: None if name == 'modprobe' else real(self, name, *a, **kw))
    host.all_loadable(IPTABLES_PARTS)
    result = result_of(capsys, {'root': host.kernel.root})
    assert result['failed'] is True and result['missing'] == IPTABLES_PARTS
    assert 'modprobe was not found' in result['msg'] and 'install kmod' in result['msg']
    assert host.modprobe_calls() == [] and result['changed'] is False
