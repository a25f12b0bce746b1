# Copyright (c) tproxy.envoy developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run commands inside a lab host's Linux namespaces
version_added: 0.1.0
description:
  - Runs every command of a task inside the namespaces of a lab host on the controller, with C(nsenter).
  - A lab host (see C(tools/lab/lab.sh)) is a held-open process with its own network, mount and UTS namespaces, in which
    per-host directories are bound over C(/etc), C(/var/lib), C(/run) and C(/tmp). Entering it means that a task sees
    the host's own interfaces, routes, firewall rules, files and Docker engine, never the controller's.
  - Files are moved by streaming them through C(cat) in the same namespaces, so pipelining and the usual
    temporary-file transfer both work.
author: tproxy.envoy contributors (@tproxy)
options:
  pidfile:
    description:
      - Path, on the controller, of a file holding the PID of the lab host's holder process.
      - The plugin enters that process's mount, network and UTS namespaces.
      - Takes precedence over O(netns_name) when both are set.
    type: path
    vars:
      - name: ansible_netns_pidfile
    env:
      - name: ANSIBLE_NETNS_PIDFILE
  netns_name:
    description:
      - Name of a network namespace under C(/run/netns) (as made by C(ip netns add)).
      - Only the network namespace is entered; files and the mount namespace stay the controller's.
      - Used only when O(pidfile) is not set.
    type: str
    vars:
      - name: ansible_netns_name
    env:
      - name: ANSIBLE_NETNS_NAME
  nsenter_path:
    description:
      - The C(nsenter) program to run on the controller (a name looked up in E(PATH), or a path).
    type: str
    default: nsenter
    vars:
      - name: ansible_netns_nsenter_path
    env:
      - name: ANSIBLE_NETNS_NSENTER_PATH
  executable:
    description:
      - Shell that runs each command inside the namespaces (as C(EXECUTABLE -c COMMAND)).
    type: str
    default: /bin/sh
    vars:
      - name: ansible_netns_executable
    env:
      - name: ANSIBLE_NETNS_EXECUTABLE
  lab_host:
    description:
      - Name of the lab host, used in messages only.
    type: str
    vars:
      - name: inventory_hostname
extends_documentation_fragment:
  - connection_pipelining
notes:
  - Needs root on the controller (C(nsenter) into another process's namespaces).
  - The remote user is ignored; commands run as root. Privilege escalation (C(become)) is refused with a clear
    message because a lab host has no C(sudo); the lab inventory sets C(ansible_become=false).
  - One of O(pidfile) or O(netns_name) is required.
"""

EXAMPLES = r"""
# inventories/lab/hosts.yml
routers:
  hosts:
    router:
      ansible_host: 192.0.2.100
      ansible_connection: tproxy.envoy.netns
      ansible_netns_pidfile: /var/lib/tproxy-lab/router/holder.pid

# Ad hoc, only the network namespace of a host made with `ip netns add tproxy-router`:
# ansible all -i 'tproxy-router,' -c tproxy.envoy.netns -e ansible_netns_name=tproxy-router -m ansible.builtin.ping
"""

import os
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

NETNS_RUN_DIR = '/run/netns'
LAB_HINT = 'is the lab up? run `make lab`'


class NamespaceTargetError(Exception):
    """The namespaces to enter cannot be found (the lab host is not running)."""


# --- pure helpers: everything that decides what runs is here, so it can be unit-tested -----------

def parse_pid(text, source):
    """Return the PID written in a pidfile's text; raise NamespaceTargetError if there is none."""
    stripped = text.strip()
    if not stripped:
        raise NamespaceTargetError('pidfile %s is empty' % source)
    if not stripped.isdigit() or int(stripped) <= 0:
        raise NamespaceTargetError('pidfile %s does not hold a PID: %r' % (source, stripped[:40]))
    return int(stripped)


def read_holder_pid(pidfile, proc_root='/proc'):
    """Read the holder's PID from pidfile and check that the process still exists."""
    try:
        with open(pidfile, 'r') as handle:
            text = handle.read()
    except FileNotFoundError:
        raise NamespaceTargetError('pidfile %s does not exist' % pidfile)
    except OSError as exc:
        raise NamespaceTargetError('cannot read pidfile %s: %s' % (pidfile, exc))
    pid = parse_pid(text, pidfile)
    if not os.path.exists(os.path.join(proc_root, str(pid), 'ns', 'net')):
        raise NamespaceTargetError('holder process %d (from %s) is gone' % (pid, pidfile))
    return pid


def check_isolated(pid, kinds=('mnt', 'net'), proc_root='/proc'):
    """Refuse a PID that shares the controller's namespaces: a stale pidfile whose PID was reused
    would otherwise make every task run on the controller itself."""
    for kind in kinds:
        theirs = os.stat(os.path.join(proc_root, str(pid), 'ns', kind)).st_ino
        ours = os.stat(os.path.join(proc_root, 'self', 'ns', kind)).st_ino
        if theirs == ours:
            raise NamespaceTargetError(
                'process %d shares the controller\'s %s namespace: not a lab holder (stale pidfile?)' % (pid, kind))


def netns_path(name, run_dir=NETNS_RUN_DIR):
    """Path of a named network namespace; refuse names that would leave run_dir."""
    if not name or '/' in name or name in ('.', '..'):
        raise NamespaceTargetError('invalid network namespace name %r' % (name,))
    return os.path.join(run_dir, name)


def nsenter_prefix(nsenter, pid=None, netns=None):
    """The nsenter argument list that enters a holder's namespaces (pid) or one named netns (path)."""
    if pid is not None:
        return [nsenter, '--target', str(pid), '--mount', '--net', '--uts']
    if netns is not None:
        return [nsenter, '--net=%s' % netns]
    raise NamespaceTargetError('neither a pidfile nor a network namespace name is set')


def wrap_command(prefix, executable, cmd):
    """argv that runs the shell command cmd with executable inside the namespaces of prefix."""
    return list(prefix) + ['--', executable, '-c', cmd]


def put_command(remote_path):
    """Shell command that writes its stdin to remote_path."""
    return 'cat > %s' % shlex.quote(remote_path)


def fetch_command(remote_path):
    """Shell command that writes remote_path to its stdout."""
    return 'cat %s' % shlex.quote(remote_path)


# --- the plugin -----------------------------------------------------------------------------------

class Connection(ConnectionBase):
    """Run commands in a lab host's namespaces with nsenter."""

    transport = 'tproxy.envoy.netns'
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prefix = None

    def _host_label(self):
        return self.get_option('lab_host') or self._play_context.remote_addr or 'unknown'

    def _resolve_prefix(self):
        pidfile = self.get_option('pidfile')
        name = self.get_option('netns_name')
        try:
            if pidfile:
                pid = read_holder_pid(pidfile)
                check_isolated(pid)
                return nsenter_prefix(self.get_option('nsenter_path'), pid=pid)
            if name:
                path = netns_path(name)
                if not os.path.exists(path):
                    raise NamespaceTargetError('network namespace %s does not exist' % path)
                return nsenter_prefix(self.get_option('nsenter_path'), netns=path)
            raise NamespaceTargetError('set ansible_netns_pidfile or ansible_netns_name for this host')
        except NamespaceTargetError as exc:
            raise AnsibleConnectionFailure(
                'tproxy.envoy.netns: lab host %s: %s; %s' % (self._host_label(), exc, LAB_HINT))

    def _connect(self):
        # nsenter needs root, and inside the namespaces we are root: the remote user does not apply.
        self._play_context.remote_user = 'root'
        if not self._connected:
            self._prefix = self._resolve_prefix()
            display.vvv('ESTABLISH NETNS CONNECTION: %s' % shlex.join(self._prefix), host=self._host_label())
            self._connected = True
        return self

    def _run(self, cmd, in_data=None, stdin=subprocess.PIPE, stdout=subprocess.PIPE):
        """Run the shell command cmd in the namespaces; stdin/stdout may be open files (streaming)."""
        argv = wrap_command(self._prefix, self.get_option('executable'), to_text(cmd))
        display.vvv('EXEC %s' % shlex.join(argv), host=self._host_label())
        try:
            proc = subprocess.Popen(
                [to_bytes(arg, errors='surrogate_or_strict') for arg in argv],
                stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        except OSError as exc:
            raise AnsibleConnectionFailure(
                'tproxy.envoy.netns: cannot run %s: %s' % (argv[0], to_native(exc)))
        out, err = proc.communicate(in_data)
        return proc.returncode, out, err

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if sudoable and self.become is not None:
            raise AnsibleConnectionFailure(
                'tproxy.envoy.netns: lab host %s is entered as root and has no sudo; '
                'turn privilege escalation off for it (ansible_become: false)' % self._host_label())
        return self._run(cmd, in_data=in_data)

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv('PUT %s TO %s' % (in_path, out_path), host=self._host_label())
        try:
            local_file = open(to_bytes(in_path, errors='surrogate_or_strict'), 'rb')
        except OSError as exc:
            raise AnsibleError('tproxy.envoy.netns: cannot read %s: %s' % (in_path, to_native(exc)))
        with local_file:
            rc, dummy, stderr = self._run(put_command(out_path), stdin=local_file)
        if rc != 0:
            raise AnsibleError('tproxy.envoy.netns: failed to write %s on %s: %s'
                               % (out_path, self._host_label(), to_native(stderr).strip()))

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv('FETCH %s TO %s' % (in_path, out_path), host=self._host_label())
        try:
            local_file = open(to_bytes(out_path, errors='surrogate_or_strict'), 'wb')
        except OSError as exc:
            raise AnsibleError('tproxy.envoy.netns: cannot write %s: %s' % (out_path, to_native(exc)))
        with local_file:
            rc, dummy, stderr = self._run(fetch_command(in_path), stdin=subprocess.DEVNULL, stdout=local_file)
        if rc != 0:
            os.unlink(to_bytes(out_path, errors='surrogate_or_strict'))
            raise AnsibleError('tproxy.envoy.netns: failed to read %s on %s: %s'
                               % (in_path, self._host_label(), to_native(stderr).strip()))

    def close(self):
        # Nothing is held open between commands: each one is its own nsenter.
        self._connected = False
