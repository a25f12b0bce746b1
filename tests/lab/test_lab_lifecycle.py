# Copyright (c) tproxy.envoy developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's whole life, for real: up (cold), status, up again, isolation, reboot, down, down again.

Needs root and the lab's tools (iproute2, util-linux, docker.io). The tests run in file order and
share one lab; the module fixture takes it down even if a step fails. No test relies on an
earlier one: `lab_absent`, `lab_up` and `lab_taken_down` put the lab in the state each needs
(file order needs no extra step; `--reverse-order` or `-k` pays for the ones it needs). The controller is
snapshotted before and after (addresses, links, routes, rules, firewall, mounts, /etc, netns,
hostname, forwarding) and must come out unchanged, with no lab process, mount, namespace or
cgroup left. Then /run/netns is put in each state a controller may have before `up` (in a mount
namespace of the test's own) and must be as found after `down`. Run with -s to see the timings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# The lab's layout has one home, the lab inventory; tools/lab/inventory.py reads it.
sys.path.insert(0, str(REPO / 'tools' / 'lab'))
import inventory  # noqa: E402  pylint: disable=wrong-import-position

LAB_SH = REPO / 'tools' / 'lab' / 'lab.sh'
LAB = inventory.load()
LAB_DIR = Path(LAB.dir)
LAN_NETNS = Path('/run/netns', LAB.lan_netns)
IMAGES_ENV = REPO / 'tools' / 'lab' / 'images.env'
HOSTS = tuple(LAB.hosts)
ENGINE_HOSTS = LAB.engine_hosts
NETNS = {name: host.netns for name, host in LAB.hosts.items()}
# The lab is dual stack: every host has an IPv6 address too (inventory.py checks the range).
ADDRESS6 = LAB.addresses6
# The public contract (design §2): the inventory's hosts and the groups the playbooks target.
GROUP_OF = {'client': 'clients', 'router': 'routers', 'web': 'webservers'}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root (namespaces, mounts, dockerd)'),
    pytest.mark.skipif(shutil.which('dockerd') is None, reason='dockerd (Debian docker.io) is not installed'),
]

STATE: dict = {'timings': {}}


# ---------------------------------------------------------------- helpers

def lab_env(**extra):
    env = dict(os.environ, **extra)
    # tools/lab/images.sh takes Envoy/httpbin versions from this venv (the one running the tests).
    env.setdefault('PYTHON', sys.executable)
    return env


def lab(*args, timeout=1800):
    started = time.monotonic()
    proc = subprocess.run(['bash', str(LAB_SH), *args], capture_output=True, text=True, env=lab_env(),
                          timeout=timeout, check=False)
    proc.elapsed = time.monotonic() - started
    return proc


def run(*argv, check=True, **kwargs):
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, **kwargs).stdout


def holder_pid(host):
    """The PID in the host's ansible_netns_pidfile: what the connection plugin enters."""
    return int(Path(LAB.hosts[host].pidfile).read_text())


def in_host(host, *argv, **kwargs):
    """Run argv inside a lab host's namespaces, as the connection plugin does."""
    return run('nsenter', '--target', str(holder_pid(host)), '--mount', '--net', '--uts', '--', *argv, **kwargs)


def ns_inode(pid, kind):
    return os.stat('/proc/%s/ns/%s' % (pid, kind)).st_ino


def start_time(pid):
    """Field 22 of /proc/PID/stat: with the PID, identifies a process (PIDs are reused)."""
    with open('/proc/%d/stat' % pid) as handle:
        return handle.read().rsplit(')', 1)[1].split()[19]


def alive(pid, started):
    """The process that had this PID at that start time still runs (a zombie has ended)."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] != 'Z'


def processes():
    result = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                result[int(entry)] = {
                    'comm': Path('/proc/%s/comm' % entry).read_text().strip(),
                    'cmdline': Path('/proc/%s/cmdline' % entry).read_bytes().replace(b'\0', b' ').decode(errors='replace'),
                    'net': ns_inode(entry, 'net'),
                    'mnt': ns_inode(entry, 'mnt'),
                }
            except OSError:
                pass  # exited while we looked
    return result


def tree_digest(root):
    """Names, types, sizes and mtimes of everything under root."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(('%s %o %d %d\n' % (path, st.st_mode, st.st_size, st.st_mtime_ns)).encode())
    return digest.hexdigest()


def controller_snapshot():
    snap = {
        'addr': re.sub(r'\n\s+valid_lft.*', '', run('ip', 'addr')),
        'link': run('ip', '-o', 'link'),
        'route': run('ip', 'route', 'show', 'table', 'all'),
        'rule': run('ip', 'rule'),
        'rule6': run('ip', '-6', 'rule'),
        # Counters and the "Generated on" stamps change by themselves.
        'iptables': re.sub(r'\[\d+:\d+\]|^#.*$', '', run('iptables-save'), flags=re.M),
        'mounts': run('findmnt', '-rn', '-o', 'TARGET,SOURCE,FSTYPE'),
        'netns': sorted(os.listdir('/run/netns')) if os.path.isdir('/run/netns') else None,
        'hostname': run('hostname'),
        'ip_forward': Path('/proc/sys/net/ipv4/ip_forward').read_text(),
        'etc': tree_digest('/etc'),
        'usr_local_sbin': tree_digest('/usr/local/sbin'),
        'var_lib_entries': sorted(os.listdir('/var/lib')),
    }
    if shutil.which('nft'):
        snap['nft'] = run('nft', 'list', 'ruleset')
    if os.path.exists('/run/docker.sock'):  # the controller's own engine, if one runs
        snap['docker'] = run('docker', '-H', 'unix:///run/docker.sock', 'ps', '-a', '--format', '{{.ID}} {{.Names}}',
                             check=False)
    return snap


# ---------------------------------------------------------------- the lab, once for the module

@pytest.fixture(scope='module', autouse=True)
def lab_lifecycle():
    leftovers = [p for p in (LAB_DIR, LAN_NETNS) if p.exists()]
    if leftovers:
        pytest.fail('a lab is already up (%s): run `make lab-down` first; this test would remove it'
                    % ', '.join(map(str, leftovers)))
    STATE['before'] = controller_snapshot()
    STATE['processes_before'] = set(processes())
    yield
    if LAB_DIR.exists() or LAN_NETNS.exists():
        lab('down')  # a step failed before test_down: still leave the machine as it was
    for name, seconds in STATE['timings'].items():
        print('lab timing: %-12s %6.1f s' % (name, seconds))


def engine_pid(host):
    return int((LAB_DIR / host / 'dockerd.pid').read_text())


def remember_lab():
    """Record the lab's current holders and engines, and accumulate every lab process and
    namespace seen, so the end of the test can prove that none of them outlived `down`."""
    STATE['holders'] = {h: holder_pid(h) for h in HOSTS}
    STATE['engines'] = {h: engine_pid(h) for h in ENGINE_HOSTS}
    pids = list(STATE['holders'].values()) + list(STATE['engines'].values())
    STATE.setdefault('identity', {}).update({pid: start_time(pid) for pid in pids})
    STATE.setdefault('ns', set()).update(
        (kind, ns_inode(pid, kind)) for pid in STATE['holders'].values() for kind in ('net', 'mnt'))
    # The lab is up (again): a `down` seen before and the controller's state after it are stale.
    STATE['down'] = None
    STATE.pop('after', None)


def take_down():
    """`down`, after recording every process in the lab's namespaces (to prove none outlives it)."""
    # A container that would restart forever: `down` must stop it through its engine.
    if IMAGES_ENV.exists():
        sock = 'unix://%s' % (LAB_DIR / 'web' / 'run' / 'docker.sock')
        node = [line.split('=', 1)[1].strip() for line in IMAGES_ENV.read_text().splitlines()
                if line.startswith('LAB_IMAGE_NODE=')][0]
        run('docker', '-H', sock, 'run', '-d', '--name', 'lifecycle-probe', '--restart', 'always',
            '--network', 'host', node, 'sleep', 'infinity')
        pid = int(run('docker', '-H', sock, 'inspect', '--format', '{{.State.Pid}}', 'lifecycle-probe'))
        STATE['identity'][pid] = start_time(pid)
    STATE['lab_processes'] = {pid for pid, info in processes().items()
                              if (('net', info['net']) in STATE['ns'] or ('mnt', info['mnt']) in STATE['ns'])}
    proc = lab('down', timeout=600)
    STATE['timings']['down'] = proc.elapsed
    STATE['down'] = proc
    return proc


# ---------------------------------------------------------------- the state each test needs

@pytest.fixture
def lab_absent():
    """No lab, for the cold start (a test run before it may have left one up)."""
    if LAB_DIR.exists() or LAN_NETNS.exists():
        assert lab('down', timeout=600).returncode == 0


def ensure_up():
    if 'holders' not in STATE or lab('status').returncode != 0:
        proc = lab('up')
        assert proc.returncode == 0, proc.stderr[-3000:]
        remember_lab()


@pytest.fixture
def lab_up():
    """The lab is up and its processes are remembered, whichever test ran before."""
    ensure_up()


@pytest.fixture
def lab_taken_down():
    """The lab came up in this module and `down` has removed it since."""
    if not STATE.get('down'):
        ensure_up()
        assert take_down().returncode == 0


# ---------------------------------------------------------------- steps, in file order


@pytest.mark.usefixtures('lab_absent')
def test_up_cold_builds_the_lab():
    proc = lab('up')
    STATE['timings']['up (cold)'] = proc.elapsed
    assert proc.returncode == 0, proc.stderr[-3000:]
    remember_lab()


@pytest.mark.usefixtures('lab_up')
def test_status_reports_every_host_up():
    proc = lab('status')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert set(lines) == set(HOSTS)
    for host in HOSTS:
        assert 'holder %d' % STATE['holders'][host] in lines[host]
    for host in ENGINE_HOSTS:
        assert 'dockerd %d' % STATE['engines'][host] in lines[host]


@pytest.mark.usefixtures('lab_up')
def test_hosts_have_the_inventory_addresses_and_no_route_out():
    assert {name: host.groups for name, host in LAB.hosts.items()} == {h: (g,) for h, g in GROUP_OF.items()}
    raw = inventory.raw_hostvars()
    for host in HOSTS:
        assert raw[host][0]['ansible_connection'] == 'tproxy.envoy.netns'
        # The plugin's pidfile holds the PID of a holder in the host's network namespace.
        assert ns_inode(holder_pid(host), 'net') == os.stat(Path('/run/netns', NETNS[host])).st_ino
        address = LAB.hosts[host].address
        addrs = run('ip', '-n', NETNS[host], '-4', '-o', 'addr', 'show', 'dev', 'eth0')
        assert ' %s/%d ' % (address, LAB.prefix_length) in addrs
        routes = run('ip', '-n', NETNS[host], 'route', 'show', 'table', 'all')
        assert 'default' not in routes, '%s has a default route:\n%s' % (host, routes)
        # Only the connected LAN: the client role adds the route to web via the router.
        main = [line.strip() for line in run('ip', '-n', NETNS[host], 'route', 'show').splitlines()]
        assert main == ['%s dev eth0 proto kernel scope link src %s' % (LAB.network, address)]


@pytest.mark.usefixtures('lab_up')
def test_hosts_are_dual_stack_with_no_ipv6_route_out():
    assert set(ADDRESS6) == set(HOSTS)
    for host in HOSTS:
        sysctls = in_host(host, 'cat', '/proc/sys/net/ipv6/conf/all/disable_ipv6',
                          '/proc/sys/net/ipv6/conf/eth0/disable_ipv6')
        assert sysctls.split() == ['0', '0'], (host, sysctls)
        # nodad: usable at once, never left tentative.
        addrs = run('ip', '-n', NETNS[host], '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'global')
        assert re.fullmatch(r'\d+: eth0\s+inet6 %s/%d scope global nodad \\.*\n' % (
            re.escape(ADDRESS6[host]), LAB.ipv6_prefix_length), addrs), (host, addrs)
        # The connected LAN and the link-local network only (the roles add routes later).
        routes = [line.split()[0] for line in run('ip', '-n', NETNS[host], '-6', 'route', 'show').splitlines()]
        assert sorted(routes) == sorted([str(LAB.network6), 'fe80::/64']), (host, routes)


@pytest.mark.usefixtures('lab_up')
def test_hosts_reach_each_other_on_the_bridge():
    for host in ('router', 'web'):
        address = LAB.hosts[host].address
        # Port 9 is closed: a quick "Connection refused" is the host's RST, so the IP path works.
        probe = subprocess.run(['ip', 'netns', 'exec', NETNS['client'], 'timeout', '5', 'bash', '-c',
                                ': </dev/tcp/%s/9' % address], capture_output=True, text=True, check=False)
        assert probe.returncode == 1 and 'Connection refused' in probe.stderr, (host, probe.returncode, probe.stderr)


def tcp_refused(host, address, port=9):
    """From inside HOST, a TCP connection to a closed port of ADDRESS is refused: the peer's RST
    came back, so the IP path works both ways (the hosts have no ping; bash's /dev/tcp suffices)."""
    probe = subprocess.run(['nsenter', '--target', str(holder_pid(host)), '--mount', '--net', '--uts', '--',
                            'timeout', '5', 'bash', '-c', ': </dev/tcp/%s/%d' % (address, port)],
                           capture_output=True, text=True, check=False)
    assert probe.returncode == 1 and 'Connection refused' in probe.stderr, (
        host, address, probe.returncode, probe.stderr)


@pytest.mark.usefixtures('lab_up')
def test_hosts_reach_each_other_over_ipv6():
    for host in ('router', 'web'):
        tcp_refused('client', ADDRESS6[host])
    tcp_refused('web', ADDRESS6['client'])


@pytest.mark.usefixtures('lab_up')
def test_hosts_are_named_and_have_their_own_files():
    for host in HOSTS:
        assert in_host(host, 'hostname').strip() == host
        mounts = in_host(host, 'findmnt', '-rn', '-o', 'TARGET,SOURCE')
        for target, source in (('/etc', 'etc'), ('/var/lib', 'var-lib'), ('/run', 'run'), ('/tmp', 'tmp'),
                               ('/usr/local/sbin', 'usr-local-sbin')):
            assert re.search(r'^%s \S*\[%s/%s\]$' % (re.escape(target), LAB_DIR / host, source), mounts, re.M), mounts
        # Its /sys shows its own interfaces, not the controller's.
        assert sorted(in_host(host, 'ls', '/sys/class/net').split()) == ['eth0', 'lo']
    assert run('hostname') == STATE['before']['hostname']


@pytest.mark.usefixtures('lab_up')
def test_engines_are_stock_dockerd_inside_the_hosts():
    for host in ENGINE_HOSTS:
        sock = LAB_DIR / host / 'run' / 'docker.sock'
        info = json.loads(run('docker', '-H', 'unix://%s' % sock, 'info', '--format', '{{json .}}'))
        assert info['Name'] == host  # the engine sees the host's hostname
        assert info['DockerRootDir'] == '/var/lib/docker'  # default paths, inside the host
        links = run('ip', '-n', NETNS[host], '-o', 'link')
        assert 'docker0' not in links  # {"bridge": "none"}: no 172.17.0.0/16
        assert in_host(host, 'cat', '/etc/docker/daemon.json').strip() == '{"bridge": "none"}'
        # Stock iptables management: Docker's chains are in the host's own firewall.
        assert re.search(r'^:DOCKER ', in_host(host, 'iptables-save', '-t', 'filter'), re.M)
        if IMAGES_ENV.exists():
            wanted = [line.split('=', 1)[1].strip() for line in IMAGES_ENV.read_text().splitlines()
                      if line.startswith('LAB_IMAGE_')]
            have = run('docker', '-H', 'unix://%s' % sock, 'images', '--format', '{{.Repository}}:{{.Tag}}').split()
            assert set(wanted) <= set(have), (wanted, have)


@pytest.mark.usefixtures('lab_up')
def test_up_again_changes_nothing():
    proc = lab('up')
    STATE['timings']['up (warm)'] = proc.elapsed
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'already up, nothing changed' in proc.stderr, proc.stderr
    assert {h: holder_pid(h) for h in HOSTS} == STATE['holders']
    assert {h: engine_pid(h) for h in ENGINE_HOSTS} == STATE['engines']


@pytest.mark.usefixtures('lab_up')
def test_up_puts_back_a_lost_ipv6_address():
    # The router loses its address; the web host has IPv6 turned off on eth0 (which drops it too).
    run('ip', '-n', NETNS['router'], '-6', 'addr', 'del', '%s/%d' % (ADDRESS6['router'], LAB.ipv6_prefix_length),
        'dev', 'eth0')
    run('nsenter', '--net=/run/netns/%s' % NETNS['web'], 'sh', '-c',
        'echo 1 >/proc/sys/net/ipv6/conf/eth0/disable_ipv6')
    status = lab('status')
    assert status.returncode == 3, status.stdout
    lines = {line.split()[0]: line for line in status.stdout.splitlines()}
    assert 'no IPv6 address' in lines['router'] and 'no IPv6 address' in lines['web'], status.stdout
    assert ADDRESS6['client'] in lines['client']
    proc = lab('up')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'router: eth0 %s/%d' % (ADDRESS6['router'], LAB.ipv6_prefix_length) in proc.stderr, proc.stderr
    assert 'web: IPv6 enabled (net.ipv6.conf.eth0.disable_ipv6=0)' in proc.stderr, proc.stderr
    # Only the addresses were missing: no host was rebuilt for them.
    assert {h: holder_pid(h) for h in HOSTS} == STATE['holders']
    assert {h: engine_pid(h) for h in ENGINE_HOSTS} == STATE['engines']
    assert lab('status').returncode == 0
    test_hosts_are_dual_stack_with_no_ipv6_route_out()
    test_hosts_reach_each_other_over_ipv6()


@pytest.mark.usefixtures('lab_up')
def test_a_write_to_etc_in_a_host_stays_in_that_host():
    name = 'tproxy-lab-isolation-%d' % os.getpid()
    in_host('router', 'sh', '-c', 'echo router > /etc/%s; echo router > /usr/local/sbin/%s' % (name, name))
    assert not Path('/etc', name).exists()
    assert not Path('/usr/local/sbin', name).exists()
    assert (LAB_DIR / 'router' / 'usr-local-sbin' / name).read_text() == 'router\n'
    assert (LAB_DIR / 'router' / 'etc' / name).read_text() == 'router\n'
    assert not (LAB_DIR / 'web' / 'etc' / name).exists()


@pytest.mark.usefixtures('lab_up')
def test_a_write_through_the_connection_plugin_stays_in_the_host(tmp_path):
    ansible = Path(sys.executable).with_name('ansible')
    if not ansible.exists():
        pytest.skip('no ansible next to %s' % sys.executable)
    collections = tmp_path / 'collections'
    (collections / 'ansible_collections' / 'tproxy').mkdir(parents=True)
    (collections / 'ansible_collections' / 'tproxy' / 'envoy').symlink_to(REPO)
    name = 'tproxy-lab-plugin-%d' % os.getpid()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([str(ansible), '-i', str(inventory.INVENTORY_DIR), 'web', '-m', 'ansible.builtin.copy',
                           '-a', 'dest=/etc/%s content=web-via-plugin' % name],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not Path('/etc', name).exists()
    assert (LAB_DIR / 'web' / 'etc' / name).read_text() == 'web-via-plugin'


@pytest.mark.usefixtures('lab_up')
def test_reboot_keeps_the_disk_and_loses_run_tmp_and_processes():
    in_host('web', 'sh', '-c', 'echo kept > /etc/reboot-probe; echo lost > /tmp/reboot-probe; echo lost > /run/reboot-probe')
    old_holder, old_engine = STATE['holders']['web'], STATE['engines']['web']
    proc = lab('reboot', 'web', timeout=300)
    STATE['timings']['reboot web'] = proc.elapsed
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not alive(old_holder, STATE['identity'][old_holder])
    assert not alive(old_engine, STATE['identity'][old_engine])
    new_holder = holder_pid('web')
    assert new_holder != old_holder
    assert in_host('web', 'cat', '/etc/reboot-probe') == 'kept\n'
    assert in_host('web', 'sh', '-c', 'ls /tmp/reboot-probe /run/reboot-probe 2>/dev/null', check=False) == ''
    assert lab('status').returncode == 0
    remember_lab()
    # The new network namespace got the IPv6 address back too.
    tcp_refused('client', ADDRESS6['web'])


@pytest.mark.usefixtures('lab_up')
def test_up_repairs_a_half_broken_lab():
    os.kill(engine_pid('web'), 15)
    os.kill(holder_pid('router'), 15)
    run('ip', 'netns', 'delete', NETNS['client'])
    time.sleep(1)
    assert lab('status').returncode == 3
    proc = lab('up')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'nothing changed' not in proc.stderr
    assert lab('status').returncode == 0
    remember_lab()
    test_hosts_reach_each_other_on_the_bridge()
    test_hosts_reach_each_other_over_ipv6()
    test_hosts_are_named_and_have_their_own_files()


@pytest.mark.usefixtures('lab_up')
def test_down_removes_the_lab():
    proc = take_down()
    assert STATE['lab_processes'], 'no lab process seen: the test would prove nothing'
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not LAB_DIR.exists()


@pytest.mark.usefixtures('lab_taken_down')
def test_down_again_is_a_no_op():
    proc = lab('down', timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'nothing to do' in proc.stderr
    assert lab('status').returncode == 3


@pytest.mark.usefixtures('lab_taken_down')
def test_no_lab_process_namespace_mount_or_cgroup_is_left():
    for pid, started in STATE['identity'].items():
        assert not alive(pid, started), 'lab process %d still runs' % pid
    now = processes()
    in_lab_ns = {pid: info for pid, info in now.items()
                 if ('net', info['net']) in STATE['ns'] or ('mnt', info['mnt']) in STATE['ns']}
    assert not in_lab_ns, in_lab_ns
    new = {pid: info for pid, info in now.items() if pid not in STATE['processes_before']}
    # The lab's directory or cgroup (/var/lib/tproxy-lab/..., /tproxy-lab/HOST) in a command line, not
    # any "tproxy-lab": a lab user queued on the shared lock (flock /tmp/tproxy-lab.lock ...) is no lab process.
    lab_like = {pid: info for pid, info in new.items()
                if re.search(r'/tproxy-lab(/|\s|$)', info['cmdline'])
                or info['comm'] in ('dockerd', 'containerd', 'containerd-shim') and info['mnt'] != ns_inode('self', 'mnt')}
    assert not lab_like, lab_like
    assert 'tproxy' not in run('findmnt', '-rn', '-o', 'TARGET,SOURCE')
    netns = os.listdir('/run/netns') if os.path.isdir('/run/netns') else []
    assert not set(netns) & {LAB.lan_netns, *NETNS.values()}
    assert not list(Path('/sys/fs/cgroup').glob('*/tproxy-lab')) and not Path('/sys/fs/cgroup/tproxy-lab').exists()


@pytest.mark.usefixtures('lab_taken_down')
def test_controller_has_no_new_mount():
    # Compared as sets, not for equality: other tools on a shared controller mount and unmount
    # their own things meanwhile. The lab's only footprint in the controller's mount table is
    # /run/netns (made by `ip netns add`), which must be back to how it was.
    before = set(STATE['before']['mounts'].splitlines())
    after = set(STATE.setdefault('after', controller_snapshot())['mounts'].splitlines())
    assert not after - before
    netns_mounts = [line for line in before ^ after if line.split()[0].startswith('/run/netns')]
    assert not netns_mounts


@pytest.mark.usefixtures('lab_taken_down')
@pytest.mark.parametrize('key', ['addr', 'link', 'route', 'rule', 'rule6', 'iptables', 'nft', 'netns',
                                 'hostname', 'ip_forward', 'etc', 'usr_local_sbin', 'var_lib_entries', 'docker'])
def test_controller_is_as_before(key):
    # A key absent before (no nft, no engine of the controller's own) must be absent after too.
    before = STATE['before']
    after = STATE.setdefault('after', controller_snapshot())
    assert after.get(key) == before.get(key)


# ---------------------------------------------------------------- /run/netns as found, every case

# `ip netns add` creates /run/netns or makes it a mount point; `up` records what it found and
# `down` must restore exactly that. The run above proves it for this machine's state; these prove
# each state whatever the machine has: in a mount namespace of their own with a fresh /run (the
# controller's is never touched), another user of `ip netns` leaves /run/netns as the case says,
# then lab.sh builds and removes a one-host lab (no engine, so it is quick) from an inventory made
# of the lab inventory's first host without an engine, and without its IPv6 address: an IPv4-only
# inventory still builds a lab that is up, with no IPv6 address on the host.
RUN_NETNS_CASES = {
    'absent': '',
    'directory': 'mkdir /run/netns',
    'empty mount point': 'ip netns add other-user && ip netns delete other-user',
    'mount point in use': 'ip netns add other-user',
}
CASE_LAB_DIR = '/var/lib/tproxy-lab-netns-case'
CASE_SCRIPT = r'''
set -u
# The controller's /run/netns mounts came along into this mount namespace: drop them here (only
# here; mountpoint(1) would still see them under a new /run), then start /run from nothing.
while mountpoint -q /run/netns; do umount -l /run/netns; done
mount -t tmpfs tproxy-netns-case /run
%s
state() {
  if mountpoint -q /run/netns; then echo "mount: $(ls -A /run/netns | sort | tr '\n' ' ')"
  elif [ -d /run/netns ]; then echo "directory: $(ls -A /run/netns | sort | tr '\n' ' ')"
  else echo absent; fi
}
echo "before $(state)"
rc=0
bash "$LAB_SH" up >&2 || rc=$?
echo "up $(state)"
pid=$(cat "$HOLDER_PIDFILE" 2>/dev/null) && echo "holder $pid $(cut -d' ' -f22 "/proc/$pid/stat")"
echo "inet6 $(ip -n "$HOST_NETNS" -6 -o addr show dev eth0 scope global | wc -l)"
bash "$LAB_SH" status >&2; echo "status $?"
bash "$LAB_SH" down >&2 || rc=$?
echo "after $(state)"
exit $rc
'''


def case_inventory(path):
    host = next(h for h in LAB.hosts.values() if not h.engine)
    data = {'all': {'vars': {'lab_dir': CASE_LAB_DIR, 'lab_lan_netns': 'tproxy-case-lan', 'lab_prefix_length':
                             LAB.prefix_length, 'lab_netns': 'tproxy-case-{{ inventory_hostname }}',
                             'ansible_netns_pidfile': '{{ lab_dir }}/{{ inventory_hostname }}/holder.pid',
                             'lab_docker_engine': False},
                    'hosts': {host.name: {'ansible_host': host.address}}}}
    path.mkdir()
    (path / 'hosts.yml').write_text(yaml.safe_dump(data))
    return inventory.load(path)


@pytest.mark.parametrize('case', list(RUN_NETNS_CASES))
def test_down_leaves_run_netns_as_up_found_it(tmp_path, case):
    assert not Path(CASE_LAB_DIR).exists(), 'a leftover of an earlier run: remove %s' % CASE_LAB_DIR
    case_lab = case_inventory(tmp_path / 'inventory')
    (host,) = case_lab.hosts.values()
    assert case_lab.addresses6 == {}
    env = lab_env(LAB_INVENTORY=str(tmp_path / 'inventory'), LAB_SH=str(LAB_SH), HOLDER_PIDFILE=host.pidfile,
                  HOST_NETNS=host.netns)
    proc = subprocess.run(['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c',
                           CASE_SCRIPT % RUN_NETNS_CASES[case]], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    states = dict(line.split(' ', 1) for line in proc.stdout.splitlines())
    # The lab really used /run/netns in there, and its holder is gone with it.
    assert states['up'].startswith('mount: ') and {host.netns, case_lab.lan_netns} <= set(states['up'].split()[1:])
    assert states['status'] == '0' and states['inet6'] == '0', proc.stdout + proc.stderr[-3000:]
    pid, started = states['holder'].split()
    assert not alive(int(pid), started)
    assert states['after'] == states['before'], proc.stderr[-3000:]
    assert not Path(CASE_LAB_DIR).exists()
