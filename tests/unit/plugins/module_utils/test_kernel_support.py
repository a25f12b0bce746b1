# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.tproxy.envoy.plugins.module_utils import kernel_support as ks
from ansible_collections.tproxy.envoy.tests.unit.plugins.module_utils.fake_tproxy_host import (
    CONFIG_SYMBOLS,
    MODULE_PATHS,
    FakeIptables,
    FakeKernel,
)

ALL = sorted(MODULE_PATHS)
BOTH = ('ipv4', 'ipv6')


def states(root, backend='iptables', families=('ipv4',)):
    _facts, components = ks.inspect_kernel(str(root), backend, list(families))
    return dict((c['name'], c) for c in components)


def decide(kernel, name, families=BOTH):
    return ks.decide_component(name, ks.gather_kernel_facts(kernel.root), families)


def others_missing(kernel, name, families=BOTH):
    """Evidence for one component must not leak into the others."""
    return all(decide(kernel, other, families)['state'] == 'missing' for other in ALL if other != name)


# ---------------------------------------------------------------- which components

@pytest.mark.parametrize('backend, families, expected', [
    ('iptables', ['ipv4'], ['nf_tproxy_ipv4', 'nf_socket_ipv4', 'xt_TPROXY', 'xt_socket']),
    ('iptables', ['ipv6'], ['nf_tproxy_ipv6', 'nf_socket_ipv6', 'xt_TPROXY', 'xt_socket']),
    ('iptables', ['ipv6', 'ipv4'], ['nf_tproxy_ipv4', 'nf_socket_ipv4', 'nf_tproxy_ipv6', 'nf_socket_ipv6',
                                    'xt_TPROXY', 'xt_socket']),
    ('nftables', ['ipv4'], ['nf_tproxy_ipv4', 'nf_socket_ipv4', 'nft_tproxy', 'nft_socket']),
    ('nftables', BOTH, ['nf_tproxy_ipv4', 'nf_socket_ipv4', 'nf_tproxy_ipv6', 'nf_socket_ipv6',
                        'nft_tproxy', 'nft_socket']),
])
def test_each_backend_and_family_needs_its_components(backend, families, expected):
    assert ks.required_components(backend, families) == expected


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError):
        ks.required_components('pf', ['ipv4'])


# ---------------------------------------------------------------- the four states, per component

@pytest.mark.parametrize('name', ALL)
def test_builtin_from_modules_builtin(tmp_path, name):
    kernel = FakeKernel(tmp_path)
    kernel.builtin(name)
    result = decide(kernel, name)
    assert result['state'] == 'builtin'
    assert 'modules.builtin' in result['evidence'] and MODULE_PATHS[name] in result['evidence']
    assert others_missing(kernel, name)


@pytest.mark.parametrize('where, source', [('proc', 'proc/config.gz'), ('boot', 'boot/config-' + '6.1.0-99-test')])
@pytest.mark.parametrize('name', ALL)
def test_builtin_from_kernel_config(tmp_path, name, where, source):
    kernel = FakeKernel(tmp_path)
    kernel.config({name: 'y'}, where=where)
    result = decide(kernel, name)
    assert result['state'] == 'builtin'
    assert result['evidence'] == '%s: %s=y' % (kernel.path(source), CONFIG_SYMBOLS[name])
    assert others_missing(kernel, name)


def test_proc_config_wins_over_boot_config(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.config({'xt_TPROXY': 'y'}, where='proc')
    kernel.config({'xt_TPROXY': 'n'}, where='boot')
    assert decide(kernel, 'xt_TPROXY')['state'] == 'builtin'


@pytest.mark.parametrize('name', ALL)
def test_loaded_from_proc_modules(tmp_path, name):
    kernel = FakeKernel(tmp_path)
    kernel.module_file(name)
    kernel.loaded(name)
    result = decide(kernel, name)
    assert result['state'] == 'loaded'
    assert result['evidence'] == '%s lists %s' % (kernel.path('proc/modules'), name)


@pytest.mark.parametrize('name', ALL)
def test_loaded_from_sys_module_initstate(tmp_path, name):
    kernel = FakeKernel(tmp_path)
    kernel.sys_module(name, initstate='live')
    result = decide(kernel, name)
    assert result['state'] == 'loaded'
    assert 'initstate' in result['evidence']
    assert others_missing(kernel, name)


def test_module_still_coming_up_is_not_loaded(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.sys_module('xt_TPROXY', initstate='coming')
    assert decide(kernel, 'xt_TPROXY')['state'] == 'missing'


def test_sys_module_without_initstate_means_built_in(tmp_path):
    # Built-in code that has parameters gets a /sys/module directory but no initstate.
    kernel = FakeKernel(tmp_path, module_support=False)
    kernel.sys_module('xt_socket')
    result = decide(kernel, 'xt_socket')
    assert result['state'] == 'builtin'
    assert 'without initstate' in result['evidence']


@pytest.mark.parametrize('suffix', ['.ko', '.ko.xz', '.ko.zst', '.ko.gz'])
@pytest.mark.parametrize('name', ALL)
def test_loadable_from_modules_dep(tmp_path, name, suffix):
    kernel = FakeKernel(tmp_path)
    kernel.module_file(name, suffix=suffix)
    result = decide(kernel, name)
    assert result['state'] == 'loadable'
    assert 'modules.dep lists %s' % (MODULE_PATHS[name] + suffix[3:]) in result['evidence']
    assert others_missing(kernel, name)


def test_loadable_file_outside_modules_dep_says_depmod(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.module_file('xt_socket', in_dep=False)
    result = decide(kernel, 'xt_socket')
    assert result['state'] == 'loadable'
    assert 'depmod' in result['evidence']


def test_modules_dep_entry_without_file_is_missing(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.dep_entry_only('xt_TPROXY')
    assert decide(kernel, 'xt_TPROXY')['state'] == 'missing'


def test_modules_under_usr_lib_are_found(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.write('usr/lib/modules/%s/%s' % (kernel.release, MODULE_PATHS['nft_socket']), 'ELF')
    (tmp_path / 'lib').rename(tmp_path / 'lib.unused')
    assert decide(kernel, 'nft_socket')['state'] == 'loadable'


@pytest.mark.parametrize('name', ALL)
def test_missing_says_what_was_checked(tmp_path, name):
    kernel = FakeKernel(tmp_path)
    kernel.config({name: 'm'})
    result = decide(kernel, name)
    assert result['state'] == 'missing'
    assert '%s=m' % CONFIG_SYMBOLS[name] in result['evidence']
    assert 'no %s.ko below %s' % (name, kernel.modules_dir) in result['evidence']


# ---------------------------------------------------------------- kernels without module support

@pytest.mark.parametrize('family, name, kind, entry', [
    ('ipv4', 'xt_TPROXY', 'targets', 'TPROXY'),
    ('ipv4', 'nf_tproxy_ipv4', 'targets', 'TPROXY'),
    ('ipv4', 'xt_socket', 'matches', 'socket'),
    ('ipv4', 'nf_socket_ipv4', 'matches', 'socket'),
    ('ipv6', 'xt_TPROXY', 'targets', 'TPROXY'),
    ('ipv6', 'nf_tproxy_ipv6', 'targets', 'TPROXY'),
    ('ipv6', 'xt_socket', 'matches', 'socket'),
    ('ipv6', 'nf_socket_ipv6', 'matches', 'socket'),
])
def test_no_module_support_uses_proc_net_listings(tmp_path, family, name, kind, entry):
    kernel = FakeKernel(tmp_path, module_support=False)
    kernel.xtables(family, kind, 'MARK', entry)
    result = decide(kernel, name, families=[family])
    assert result['state'] == 'builtin'
    assert '_tables_%s lists %s' % (kind, entry) in result['evidence']


def test_ipv6_listing_does_not_prove_ipv4_core(tmp_path):
    kernel = FakeKernel(tmp_path, module_support=False)
    kernel.xtables('ipv6', 'targets', 'TPROXY')
    assert decide(kernel, 'nf_tproxy_ipv4')['state'] == 'missing'
    assert decide(kernel, 'nf_tproxy_ipv6')['state'] == 'builtin'


def test_listing_of_a_family_not_requested_is_not_used_for_shared_component(tmp_path):
    kernel = FakeKernel(tmp_path, module_support=False)
    kernel.xtables('ipv6', 'targets', 'TPROXY')
    assert decide(kernel, 'xt_TPROXY', families=['ipv4'])['state'] == 'missing'


def test_proc_net_listing_is_not_builtin_evidence_on_a_module_kernel(tmp_path):
    # There the listing also shows loaded modules; the decision must come from elsewhere.
    kernel = FakeKernel(tmp_path)
    kernel.xtables('ipv4', 'targets', 'TPROXY')
    assert decide(kernel, 'xt_TPROXY')['state'] == 'missing'


def test_no_module_support_never_reports_loadable(tmp_path):
    kernel = FakeKernel(tmp_path, module_support=False)
    kernel.module_file('xt_TPROXY')
    result = decide(kernel, 'xt_TPROXY')
    assert result['state'] == 'missing'
    assert 'cannot be loaded without module support' in result['evidence']


def test_kernel_without_modules_and_config_all_builtin(tmp_path):
    """The shape of the machines this project runs on: CONFIG_MODULES off, everything =y."""
    kernel = FakeKernel(tmp_path, module_support=False)
    kernel.config(dict((name, 'y') for name in ALL))
    for backend in ks.BACKENDS:
        found = states(tmp_path, backend, BOTH)
        assert set(c['state'] for c in found.values()) == {'builtin'}, found
    facts = ks.gather_kernel_facts(str(tmp_path))
    assert facts['module_support'] is False
    assert ks.kernel_summary(facts)['config_source'] == kernel.path('proc/config.gz')


def test_mixed_states_for_both_families_and_backends(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.builtin('nf_tproxy_ipv4')
    kernel.loaded('nf_socket_ipv4')
    kernel.module_file('nf_tproxy_ipv6')
    kernel.module_file('xt_TPROXY')
    kernel.module_file('nft_tproxy')
    kernel.loaded('nft_tproxy')
    iptables = states(tmp_path, 'iptables', BOTH)
    assert dict((n, c['state']) for n, c in iptables.items()) == {
        'nf_tproxy_ipv4': 'builtin', 'nf_socket_ipv4': 'loaded', 'nf_tproxy_ipv6': 'loadable',
        'nf_socket_ipv6': 'missing', 'xt_TPROXY': 'loadable', 'xt_socket': 'missing'}
    nftables = states(tmp_path, 'nftables', ['ipv4'])
    assert dict((n, c['state']) for n, c in nftables.items()) == {
        'nf_tproxy_ipv4': 'builtin', 'nf_socket_ipv4': 'loaded', 'nft_tproxy': 'loaded', 'nft_socket': 'missing'}
    assert iptables['nf_socket_ipv6']['family'] == 'ipv6' and iptables['xt_socket']['family'] == 'any'


def test_release_comes_from_the_root(tmp_path):
    FakeKernel(tmp_path, release='5.15.0-1-fake')
    assert ks.gather_kernel_facts(str(tmp_path))['release'] == '5.15.0-1-fake'


def test_parse_kernel_config():
    text = 'CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D="x y"\n# comment\n'
    assert ks.parse_kernel_config(text) == {'CONFIG_A': 'y', 'CONFIG_B': 'm', 'CONFIG_C': 'n', 'CONFIG_D': 'x y'}


# ---------------------------------------------------------------- userspace

def which_from(found):
    return found.get


def runner(fakes):
    """run(argv) dispatching to the fake named by argv[0]; records every call."""
    calls = []

    def run(argv):
        calls.append(argv)
        return fakes[argv[0]](argv[1:])
    run.calls = calls
    return run


@pytest.mark.parametrize('text, expected', [
    ('iptables v1.8.9 (nf_tables)', ('1.8.9', 'nf_tables')),
    ('iptables v1.8.7 (legacy)', ('1.8.7', 'legacy')),
    ('ip6tables v1.6.1', ('1.6.1', 'legacy')),
    ('', (None, None)),
])
def test_parse_iptables_version(text, expected):
    assert ks.parse_iptables_version(text) == expected


@pytest.mark.parametrize('variant', ['nf_tables', 'legacy'])
def test_iptables_variants_with_extensions(variant):
    run = runner({'/sbin/iptables': FakeIptables(variant=variant)})
    info = ks.inspect_iptables('iptables', which_from({'iptables': '/sbin/iptables'}), run)
    assert info == {'command': 'iptables', 'path': '/sbin/iptables', 'version': '1.8.9', 'variant': variant,
                    'tproxy_target': True, 'socket_match': True}
    assert ['/sbin/iptables', '-j', 'TPROXY', '--help'] in run.calls


def test_iptables_without_tproxy_extension():
    run = runner({'/sbin/iptables': FakeIptables(variant='legacy', tproxy=False)})
    info = ks.inspect_iptables('iptables', which_from({'iptables': '/sbin/iptables'}), run)
    assert info['tproxy_target'] is False and info['socket_match'] is True


def test_iptables_without_socket_extension():
    run = runner({'/sbin/ip6tables': FakeIptables('ip6tables', socket=False)})
    info = ks.inspect_iptables('ip6tables', which_from({'ip6tables': '/sbin/ip6tables'}), run)
    assert info['tproxy_target'] is True and info['socket_match'] is False


def test_absent_iptables_runs_nothing():
    run = runner({})
    info = ks.inspect_iptables('iptables', which_from({}), run)
    assert info['path'] is None and info['tproxy_target'] is False and run.calls == []


def test_userspace_per_backend_and_family():
    fakes = {'/s/iptables': FakeIptables(), '/s/ip6tables': FakeIptables('ip6tables', variant='legacy'),
             '/s/nft': lambda args: (0, 'nftables v1.0.6 (Lester Gooch #5)\n', '')}
    which = which_from({'iptables': '/s/iptables', 'ip6tables': '/s/ip6tables', 'nft': '/s/nft'})
    assert sorted(ks.inspect_userspace('iptables', ['ipv4'], which, runner(fakes))) == ['iptables']
    both = ks.inspect_userspace('iptables', BOTH, which, runner(fakes))
    assert both['ip6tables']['variant'] == 'legacy' and both['iptables']['variant'] == 'nf_tables'
    assert ks.inspect_userspace('nftables', BOTH, which, runner(fakes)) == {
        'nft': {'command': 'nft', 'path': '/s/nft', 'version': '1.0.6'}}


# ---------------------------------------------------------------- verdict and message

def test_failure_message_lists_every_missing_piece_with_its_fix(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.os_release('ubuntu', 'debian')
    kernel.builtin('nf_tproxy_ipv4', 'nf_socket_ipv4')
    facts, components = ks.inspect_kernel(str(tmp_path), 'iptables', BOTH)
    userspace = {
        'iptables': {'command': 'iptables', 'path': '/s/iptables', 'tproxy_target': False, 'socket_match': True},
        'ip6tables': {'command': 'ip6tables', 'path': None, 'tproxy_target': False, 'socket_match': False},
    }
    pieces = ks.missing_pieces(components, userspace, facts)
    assert [p['name'] for p in pieces] == ['nf_tproxy_ipv6', 'nf_socket_ipv6', 'xt_TPROXY', 'xt_socket',
                                           'ip6tables', 'iptables -j TPROXY']
    message = ks.failure_message(pieces, 'iptables')
    assert '6 piece(s) missing' in message
    for piece in pieces:
        assert piece['problem'] in message
    assert message.count('linux-modules-extra-%s' % kernel.release) == 4
    assert 'install the iptables package' in message
    assert 'xtables extensions' in message


def test_fix_for_kernel_without_module_support_asks_for_builtin(tmp_path):
    FakeKernel(tmp_path, module_support=False)
    facts, components = ks.inspect_kernel(str(tmp_path), 'nftables', ['ipv4'])
    pieces = ks.missing_pieces(components, {'nft': {'command': 'nft', 'path': '/s/nft'}}, facts)
    assert [p['name'] for p in pieces] == ['nf_tproxy_ipv4', 'nf_socket_ipv4', 'nft_tproxy', 'nft_socket']
    assert all('=y (this kernel has no module support' in p['fix'] for p in pieces)


@pytest.mark.parametrize('distro, expected', [
    ('debian', 'linux-image-6.1.0-99-test'),
    ('fedora', 'kernel-modules-extra-6.1.0-99-test'),
    ('arch', 'the package that ships the modules of kernel 6.1.0-99-test'),
])
def test_fix_names_the_distribution_package(tmp_path, distro, expected):
    FakeKernel(tmp_path).os_release(distro)
    facts, components = ks.inspect_kernel(str(tmp_path), 'iptables', ['ipv4'])
    pieces = ks.missing_pieces(components, {}, facts)
    assert pieces and all(expected in p['fix'] for p in pieces)


# The os-release files as these distributions ship them (quoted values, ID_LIKE lists).
OS_RELEASES = {
    'debian-13': 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\nVERSION_ID="13"\n'
                 'VERSION_CODENAME=trixie\nID=debian\n',
    'ubuntu-24.04': 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n',
    'rhel-9': 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.4"\nID="rhel"\nID_LIKE="fedora"\n',
    'amzn-2023': 'NAME="Amazon Linux"\nVERSION_ID="2023"\nID="amzn"\nID_LIKE="fedora"\n',
    'centos-stream-9': 'NAME="CentOS Stream"\nVERSION_ID="9"\nID="centos"\nID_LIKE="rhel fedora"\n',
}


@pytest.mark.parametrize('os_release, wanted, unwanted', [
    ('debian-13', 'install linux-image-6.1.0-99-test,', 'modules-extra'),
    ('ubuntu-24.04', 'install linux-modules-extra-6.1.0-99-test (and linux-modules-6.1.0-99-test)', 'linux-image'),
    ('rhel-9', 'install kernel-modules-extra-6.1.0-99-test (and kernel-modules-6.1.0-99-test)', 'linux-'),
    ('amzn-2023', 'install kernel-modules-extra-6.1.0-99-test (and kernel-modules-6.1.0-99-test)', 'linux-'),
    ('centos-stream-9', 'install kernel-modules-extra-6.1.0-99-test', 'linux-'),
])
def test_fix_hint_per_family_from_the_real_os_release(tmp_path, os_release, wanted, unwanted):
    kernel = FakeKernel(tmp_path)
    kernel.write('etc/os-release', OS_RELEASES[os_release])
    facts, components = ks.inspect_kernel(str(tmp_path), 'nftables', ['ipv4'])
    pieces = ks.missing_pieces(components, {'nft': {'command': 'nft', 'path': '/s/nft'}}, facts)
    assert [p['name'] for p in pieces] == ['nf_tproxy_ipv4', 'nf_socket_ipv4', 'nft_tproxy', 'nft_socket']
    for piece in pieces:
        assert piece['fix'].startswith(wanted), piece['fix']
        assert unwanted not in piece['fix']


def test_os_release_in_usr_lib_when_etc_has_none(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.write('usr/lib/os-release', OS_RELEASES['amzn-2023'])
    assert ks.gather_kernel_facts(str(tmp_path))['distro_ids'] == ['amzn', 'fedora']


def test_nothing_missing_when_all_present(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.builtin(*ALL)
    facts, components = ks.inspect_kernel(str(tmp_path), 'nftables', BOTH)
    assert ks.missing_pieces(components, {'nft': {'command': 'nft', 'path': '/s/nft'}}, facts) == []


def test_modprobe_command_points_at_the_inspected_tree():
    assert ks.modprobe_command('/sbin/modprobe', 'xt_TPROXY', '/', '6.1') == ['/sbin/modprobe', '--', 'xt_TPROXY']
    assert ks.modprobe_command('/sbin/modprobe', 'xt_TPROXY', '/t', '6.1') == [
        '/sbin/modprobe', '--dirname', '/t', '--set-version', '6.1', '--', 'xt_TPROXY']
