# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fake hosts for the tproxy_kernel tests: /proc, /sys, /lib/modules and /boot trees below a
temporary root, and iptables/modprobe stand-ins that answer like the real commands."""

from __future__ import annotations

import gzip
import os
import stat

RELEASE = '6.1.0-99-test'

# Where each module lives in a real kernel tree (modules.dep / modules.builtin paths).
MODULE_PATHS = {
    'xt_TPROXY': 'kernel/net/netfilter/xt_TPROXY.ko',
    'xt_socket': 'kernel/net/netfilter/xt_socket.ko',
    'nft_tproxy': 'kernel/net/netfilter/nft_tproxy.ko',
    'nft_socket': 'kernel/net/netfilter/nft_socket.ko',
    'nf_tproxy_ipv4': 'kernel/net/ipv4/netfilter/nf_tproxy_ipv4.ko',
    'nf_socket_ipv4': 'kernel/net/ipv4/netfilter/nf_socket_ipv4.ko',
    'nf_tproxy_ipv6': 'kernel/net/ipv6/netfilter/nf_tproxy_ipv6.ko',
    'nf_socket_ipv6': 'kernel/net/ipv6/netfilter/nf_socket_ipv6.ko',
}

CONFIG_SYMBOLS = {
    'xt_TPROXY': 'CONFIG_NETFILTER_XT_TARGET_TPROXY',
    'xt_socket': 'CONFIG_NETFILTER_XT_MATCH_SOCKET',
    'nft_tproxy': 'CONFIG_NFT_TPROXY',
    'nft_socket': 'CONFIG_NFT_SOCKET',
    'nf_tproxy_ipv4': 'CONFIG_NF_TPROXY_IPV4',
    'nf_socket_ipv4': 'CONFIG_NF_SOCKET_IPV4',
    'nf_tproxy_ipv6': 'CONFIG_NF_TPROXY_IPV6',
    'nf_socket_ipv6': 'CONFIG_NF_SOCKET_IPV6',
}


class FakeKernel:
    """A kernel as seen through files below ``root``; each method adds one kind of evidence."""

    def __init__(self, root, module_support=True, release=RELEASE):
        self.root = str(root)
        self.release = release
        self.write('proc/sys/kernel/osrelease', release + '\n')
        if module_support:
            self.write('proc/modules', '')
        os.makedirs(self.modules_dir, exist_ok=True)

    @property
    def modules_dir(self):
        return os.path.join(self.root, 'lib/modules', self.release)

    def path(self, relpath):
        return os.path.join(self.root, relpath)

    def write(self, relpath, text, append=False):
        path = self.path(relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'a' if append else 'w') as handle:
            handle.write(text)
        return path

    def config(self, values, where='proc'):
        """values: {module name or CONFIG_ symbol: 'y'|'m'|'n'}; 'proc' writes config.gz, 'boot' /boot/config-*."""
        lines = ['CONFIG_MODULES=y' if os.path.exists(self.path('proc/modules')) else '# CONFIG_MODULES is not set']
        for key, value in values.items():
            symbol = CONFIG_SYMBOLS.get(key, key)
            lines.append('# %s is not set' % symbol if value == 'n' else '%s=%s' % (symbol, value))
        text = '\n'.join(lines) + '\n'
        if where == 'proc':
            os.makedirs(self.path('proc'), exist_ok=True)
            with gzip.open(self.path('proc/config.gz'), 'wt') as handle:
                handle.write(text)
        else:
            self.write('boot/config-' + self.release, text)

    def builtin(self, *names):
        for name in names:
            self.write(os.path.join(self.modules_dir, 'modules.builtin'), MODULE_PATHS[name] + '\n', append=True)

    def sys_module(self, name, initstate=None):
        os.makedirs(self.path('sys/module/%s/parameters' % name), exist_ok=True)
        if initstate:
            self.write('sys/module/%s/initstate' % name, initstate + '\n')

    def loaded(self, *names):
        for name in names:
            self.write('proc/modules', '%s 16384 0 - Live 0x0000000000000000\n' % name, append=True)

    def module_file(self, name, suffix='.ko.zst', in_dep=True, deps=()):
        relpath = MODULE_PATHS[name] + suffix[len('.ko'):]
        self.write(os.path.join(self.modules_dir, relpath), 'ELF')
        if in_dep:
            dep_list = ' '.join(MODULE_PATHS[d] + suffix[len('.ko'):] for d in deps)
            self.write(os.path.join(self.modules_dir, 'modules.dep'), '%s: %s\n' % (relpath, dep_list), append=True)

    def dep_entry_only(self, name):
        """modules.dep lists the module, but its file is gone (a half-removed package)."""
        self.write(os.path.join(self.modules_dir, 'modules.dep'), '%s:\n' % MODULE_PATHS[name], append=True)

    def xtables(self, family, kind, *entries):
        prefix = 'ip' if family == 'ipv4' else 'ip6'
        self.write('proc/net/%s_tables_%s' % (prefix, kind), ''.join(e + '\n' for e in entries), append=True)

    def os_release(self, distro_id, id_like=''):
        self.write('etc/os-release', 'ID=%s\nID_LIKE="%s"\n' % (distro_id, id_like))


def write_executable(path, text):
    with open(path, 'w') as handle:
        handle.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


# What iptables 1.8.9 prints, trimmed: generic help first, then the extension's own section.
GENERIC_HELP = """Usage: iptables -[ACD] chain rule-specification [options]
 --jump\t-j target
\t\t\t\ttarget for rule (may load target extension)
  --match\t-m match
\t\t\t\textended match (may load extension)
"""
TPROXY_HELP = """
TPROXY target options:
  --on-port port\t\t    Redirect connection to port, or the original port if 0
  --on-ip ip\t\t\t    Optionally redirect to the given IP
  --tproxy-mark value[/mask]\t    Mark packets with the given value/mask
"""
SOCKET_HELP = """
socket match options:
  --nowildcard     Do not ignore LISTEN sockets bound on INADDR_ANY
  --transparent    Ignore non-transparent sockets
"""


class FakeIptables:
    """Answers like ``iptables``/``ip6tables``; ``variant`` None mimics 1.6 (no variant in --version)."""

    def __init__(self, command='iptables', variant='nf_tables', tproxy=True, socket=True, version='1.8.9'):
        self.command, self.variant, self.tproxy, self.socket = command, variant, tproxy, socket
        self.version_line = '%s v%s%s' % (command, version, ' (%s)' % variant if variant else '')

    def __call__(self, args):
        if args == ['--version']:
            return 0, self.version_line + '\n', ''
        if args == ['-j', 'TPROXY', '--help']:
            # Unknown targets are taken for chain names: generic help, rc 0.
            return 0, self.version_line + '\n\n' + GENERIC_HELP + (TPROXY_HELP if self.tproxy else ''), ''
        if args == ['-m', 'socket', '--help']:
            if self.socket:
                return 0, self.version_line + '\n\n' + GENERIC_HELP + SOCKET_HELP, ''
            return 2, '', "%s: Couldn't load match `socket':No such file or directory\n" % self.version_line
        return 2, '', 'unexpected arguments %r\n' % (args,)

    def script(self, log_path):
        """A shell script that behaves like this fake and logs its LANG and arguments."""
        cases = []
        for args in (['--version'], ['-j', 'TPROXY', '--help'], ['-m', 'socket', '--help']):
            rc, out, err = self(args)
            cases.append("  '%s')\n    cat <<'OUT'\n%sOUT\n    cat >&2 <<'ERR'\n%sERR\n    exit %d ;;"
                         % (' '.join(args), out, err, rc))
        return ('#!/bin/sh\necho "LANG=$LANG $*" >> %s\ncase "$*" in\n%s\n  *) exit 2 ;;\nesac\n'
                % (log_path, '\n'.join(cases)))
