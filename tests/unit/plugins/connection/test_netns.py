# Copyright (c) tproxy.envoy developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the tproxy.envoy.netns connection plugin.

Command building is tested as pure functions; file transfer runs for real through a fake
`nsenter` (a script that drops the nsenter options and execs the command after `--`), so the
quoting of odd paths is proven by the files that actually appear, not by string comparison alone.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap

import pytest

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.playbook.play_context import PlayContext

from ansible_collections.tproxy.envoy.plugins.connection import netns

ODD_NAMES = [
    'plain.txt',
    'with space.txt',
    "it's quoted.txt",
    'dollar $HOME `id` $(id).txt',
    'semi;colon && echo pwned.txt',
    'glob*?[x].txt',
    'new\nline.txt',
    '-starts-with-dash.txt',
    'ünïcødé.txt',
]


@pytest.fixture(scope='module')
def plugin_loader():
    from ansible.plugins.loader import connection_loader  # the finder is installed by conftest.py

    return connection_loader


@pytest.fixture
def fake_nsenter(tmp_path):
    """An nsenter stand-in: records its arguments, skips up to `--`, execs the rest."""
    log = tmp_path / 'nsenter.args'
    script = tmp_path / 'fake-nsenter'
    script.write_text(textwrap.dedent('''\
        #!/bin/sh
        printf '%s\\n' "$@" > "{log}"
        while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
        [ "$1" = "--" ] || {{ echo "fake nsenter: no --" >&2; exit 99; }}
        shift
        exec "$@"
        ''').format(log=log))
    script.chmod(0o755)
    return script, log


@pytest.fixture
def holder_pidfile(tmp_path, monkeypatch):
    """A pidfile naming a live process; the isolation check is exercised by its own tests."""
    monkeypatch.setattr(netns, 'check_isolated', lambda pid, **kwargs: None)
    pidfile = tmp_path / 'holder.pid'
    pidfile.write_text('%d\n' % os.getpid())
    return pidfile


def make_connection(plugin_loader, **options):
    conn = plugin_loader.get('tproxy.envoy.netns', PlayContext(), None)
    assert conn is not None, 'connection plugin tproxy.envoy.netns not found'
    conn.set_options(direct=options)
    return conn


# --- pure command building ------------------------------------------------------------------------

def test_prefix_for_holder_enters_mount_net_and_uts_of_the_pid():
    assert netns.nsenter_prefix('nsenter', pid=4242) == [
        'nsenter', '--target', '4242', '--mount', '--net', '--uts']


def test_prefix_for_named_netns_enters_only_the_network_namespace():
    assert netns.nsenter_prefix('/usr/bin/nsenter', netns='/run/netns/tproxy-web') == [
        '/usr/bin/nsenter', '--net=/run/netns/tproxy-web']


def test_pid_wins_over_netns_when_both_given():
    assert '--net=/run/netns/x' not in netns.nsenter_prefix('nsenter', pid=7, netns='/run/netns/x')


def test_prefix_without_target_is_refused():
    with pytest.raises(netns.NamespaceTargetError):
        netns.nsenter_prefix('nsenter')


def test_wrap_command_passes_the_command_as_one_argument_to_the_shell():
    cmd = "echo 'a b' && touch /tmp/x"
    argv = netns.wrap_command(['nsenter', '--net=/run/netns/n'], '/bin/sh', cmd)
    assert argv == ['nsenter', '--net=/run/netns/n', '--', '/bin/sh', '-c', cmd]


@pytest.mark.parametrize('name', ODD_NAMES)
def test_put_and_fetch_commands_quote_the_path_as_one_word(name):
    path = '/tmp/dir/' + name
    assert shlex.split(netns.put_command(path)) == ['cat', '>', path]
    assert shlex.split(netns.fetch_command(path)) == ['cat', path]


@pytest.mark.parametrize('name', ['', '.', '..', 'a/b', '../etc'])
def test_netns_path_refuses_names_that_leave_run_netns(name):
    with pytest.raises(netns.NamespaceTargetError):
        netns.netns_path(name)


def test_netns_path_of_a_plain_name():
    assert netns.netns_path('tproxy-router') == '/run/netns/tproxy-router'


# --- pidfile handling -----------------------------------------------------------------------------

def test_missing_pidfile_is_reported(tmp_path):
    with pytest.raises(netns.NamespaceTargetError, match='does not exist'):
        netns.read_holder_pid(str(tmp_path / 'nope.pid'))


@pytest.mark.parametrize('content', ['', '\n', '   '])
def test_empty_pidfile_is_reported(tmp_path, content):
    pidfile = tmp_path / 'holder.pid'
    pidfile.write_text(content)
    with pytest.raises(netns.NamespaceTargetError, match='is empty'):
        netns.read_holder_pid(str(pidfile))


@pytest.mark.parametrize('content', ['abc', '-5', '0', '12 13', '1.5'])
def test_garbage_pidfile_is_reported(tmp_path, content):
    pidfile = tmp_path / 'holder.pid'
    pidfile.write_text(content)
    with pytest.raises(netns.NamespaceTargetError, match='does not hold a PID'):
        netns.read_holder_pid(str(pidfile))


def test_pid_of_a_process_that_is_gone_is_reported(tmp_path):
    proc = subprocess.Popen(['true'])
    proc.wait()
    pidfile = tmp_path / 'holder.pid'
    pidfile.write_text('%d\n' % proc.pid)
    with pytest.raises(netns.NamespaceTargetError, match='is gone'):
        netns.read_holder_pid(str(pidfile))


def test_pid_of_a_live_process_is_returned(tmp_path):
    pidfile = tmp_path / 'holder.pid'
    pidfile.write_text('%d\n' % os.getpid())
    assert netns.read_holder_pid(str(pidfile)) == os.getpid()


def _fake_proc(tmp_path, shared_kinds):
    """A /proc look-alike where process 123 shares the namespaces in shared_kinds with 'self'."""
    for pid in ('self', '123'):
        (tmp_path / 'proc' / pid / 'ns').mkdir(parents=True)
    for kind in ('mnt', 'net'):
        ours = tmp_path / 'proc' / 'self' / 'ns' / kind
        ours.write_text(kind)
        theirs = tmp_path / 'proc' / '123' / 'ns' / kind
        if kind in shared_kinds:
            os.link(ours, theirs)  # same inode = same namespace
        else:
            theirs.write_text(kind)
    return str(tmp_path / 'proc')


@pytest.mark.parametrize('shared', [('mnt',), ('net',), ('mnt', 'net')])
def test_a_pid_in_the_controllers_namespaces_is_refused(tmp_path, shared):
    proc_root = _fake_proc(tmp_path, shared)
    with pytest.raises(netns.NamespaceTargetError, match="shares the controller's %s" % shared[0]):
        netns.check_isolated(123, proc_root=proc_root)


def test_a_pid_in_namespaces_of_its_own_is_accepted(tmp_path):
    netns.check_isolated(123, proc_root=_fake_proc(tmp_path, ()))


def test_our_own_pid_is_refused_by_the_real_check():
    with pytest.raises(netns.NamespaceTargetError, match='not a lab holder'):
        netns.check_isolated(os.getpid())


# --- the plugin, through Ansible's loader ---------------------------------------------------------

def test_connect_names_the_host_and_the_fix_when_pidfile_is_missing(plugin_loader, tmp_path):
    conn = make_connection(plugin_loader, pidfile=str(tmp_path / 'router' / 'holder.pid'), lab_host='router')
    with pytest.raises(AnsibleConnectionFailure) as err:
        conn._connect()
    assert 'router' in str(err.value)
    assert 'run `make lab`' in str(err.value)


def test_connect_reports_a_gone_holder(plugin_loader, tmp_path):
    proc = subprocess.Popen(['true'])
    proc.wait()
    pidfile = tmp_path / 'holder.pid'
    pidfile.write_text(str(proc.pid))
    conn = make_connection(plugin_loader, pidfile=str(pidfile), lab_host='web')
    with pytest.raises(AnsibleConnectionFailure, match=r'lab host web: holder process \d+ .* is gone.*make lab'):
        conn._connect()


def test_connect_reports_a_missing_named_netns(plugin_loader):
    conn = make_connection(plugin_loader, netns_name='tproxy-does-not-exist-%d' % os.getpid(), lab_host='client')
    with pytest.raises(AnsibleConnectionFailure, match='client.*does not exist.*make lab'):
        conn._connect()


def test_connect_without_any_target_says_what_to_set(plugin_loader):
    conn = make_connection(plugin_loader, lab_host='client')
    with pytest.raises(AnsibleConnectionFailure, match='ansible_netns_pidfile'):
        conn._connect()


def test_connect_refuses_a_pidfile_naming_a_controller_process(plugin_loader, tmp_path):
    pidfile = tmp_path / 'holder.pid'
    pidfile.write_text(str(os.getpid()))
    conn = make_connection(plugin_loader, pidfile=str(pidfile), lab_host='router')
    with pytest.raises(AnsibleConnectionFailure, match='not a lab holder'):
        conn._connect()


def test_plugin_supports_pipelining(plugin_loader):
    conn = make_connection(plugin_loader, netns_name='x')
    assert conn.has_pipelining is True
    assert conn.transport == 'tproxy.envoy.netns'


def test_exec_command_runs_through_nsenter_with_stdin(plugin_loader, fake_nsenter, holder_pidfile):
    script, log = fake_nsenter
    conn = make_connection(plugin_loader, pidfile=str(holder_pidfile), nsenter_path=str(script))
    conn._connect()
    rc, out, err = conn.exec_command('cat; echo " rc-test" >&2; exit 3', in_data=b'module source')
    assert (rc, out, err) == (3, b'module source', b' rc-test\n')
    args = log.read_text().splitlines()
    assert args[:6] == ['--target', str(os.getpid()), '--mount', '--net', '--uts', '--']
    assert args[6:8] == ['/bin/sh', '-c']


def test_exec_command_uses_the_configured_shell(plugin_loader, fake_nsenter, holder_pidfile):
    script, log = fake_nsenter
    conn = make_connection(plugin_loader, pidfile=str(holder_pidfile), nsenter_path=str(script),
                           executable=sys.executable)
    conn._connect()
    rc, out, dummy = conn.exec_command('import sys; sys.stdout.write("py")')
    assert (rc, out) == (0, b'py')


def test_exec_command_refuses_become(plugin_loader, fake_nsenter, holder_pidfile):
    from ansible.plugins.loader import become_loader

    script, dummy = fake_nsenter
    conn = make_connection(plugin_loader, pidfile=str(holder_pidfile), nsenter_path=str(script))
    conn.set_become_plugin(become_loader.get('ansible.builtin.sudo'))
    conn._connect()
    with pytest.raises(AnsibleConnectionFailure, match='ansible_become: false'):
        conn.exec_command('true')


@pytest.mark.parametrize('name', ODD_NAMES)
def test_put_file_then_fetch_file_round_trip_odd_paths(plugin_loader, fake_nsenter, holder_pidfile, tmp_path, name):
    script, dummy = fake_nsenter
    conn = make_connection(plugin_loader, pidfile=str(holder_pidfile), nsenter_path=str(script))
    conn._connect()
    payload = bytes(range(256)) * 64 + b'\n-- end --\n'
    source = tmp_path / 'source.bin'
    source.write_bytes(payload)
    remote_dir = tmp_path / 'remote'
    remote_dir.mkdir()
    remote = remote_dir / name

    conn.put_file(str(source), str(remote))
    assert sorted(os.listdir(remote_dir)) == [name], 'the path was split or expanded by a shell'
    assert remote.read_bytes() == payload

    fetched = tmp_path / 'fetched.bin'
    conn.fetch_file(str(remote), str(fetched))
    assert fetched.read_bytes() == payload


def test_put_file_into_a_missing_directory_fails_with_the_path(plugin_loader, fake_nsenter, holder_pidfile, tmp_path):
    script, dummy = fake_nsenter
    conn = make_connection(plugin_loader, pidfile=str(holder_pidfile), nsenter_path=str(script))
    conn._connect()
    source = tmp_path / 'source.txt'
    source.write_text('x')
    target = str(tmp_path / 'no-such-dir' / 'f')
    with pytest.raises(AnsibleError, match='failed to write .*no-such-dir'):
        conn.put_file(str(source), target)


def test_fetch_file_of_a_missing_file_fails_and_leaves_no_partial_file(plugin_loader, fake_nsenter, holder_pidfile,
                                                                       tmp_path):
    script, dummy = fake_nsenter
    conn = make_connection(plugin_loader, pidfile=str(holder_pidfile), nsenter_path=str(script))
    conn._connect()
    local = tmp_path / 'fetched'
    with pytest.raises(AnsibleError, match='failed to read .*missing'):
        conn.fetch_file(str(tmp_path / 'missing'), str(local))
    assert not local.exists()


def test_missing_nsenter_binary_is_a_connection_failure(plugin_loader, holder_pidfile, tmp_path):
    conn = make_connection(plugin_loader, pidfile=str(holder_pidfile), nsenter_path=str(tmp_path / 'no-nsenter'))
    conn._connect()
    with pytest.raises(AnsibleConnectionFailure, match='cannot run'):
        conn.exec_command('true')
