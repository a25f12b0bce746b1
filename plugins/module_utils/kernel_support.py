# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Decide whether a Linux host can do TPROXY, from files and command output.

Each kernel component the chosen firewall backend needs gets one of four states:
``builtin``, ``loaded``, ``loadable`` or ``missing``, with the evidence that
decided it. ``lsmod`` and ``modprobe`` alone cannot tell: a kernel without
module support (no /proc/modules) may have everything built in, and a module
kernel may ship the .ko file in a package that is not installed.

Every path is read below ``root`` so tests (and the router role's integration
test) can point this code at a fake /proc, /sys, /lib/modules and /boot. Commands
are run through injected ``which(name)`` and ``run(argv)`` callables, so no
function here needs AnsibleModule.
"""

from __future__ import annotations

import gzip
import os
import re

STATES = ('builtin', 'loaded', 'loadable', 'missing')
FAMILIES = ('ipv4', 'ipv6')
BACKENDS = ('iptables', 'nftables')

# name: (kernel config symbol, family it serves or None for all, what it is,
#        its trace in /proc/net/ip{,6}_tables_{targets,matches} as (kind, name)).
# nf_tproxy_ipv4 has no listing of its own, but Kconfig makes the TPROXY target
# select it, so a built-in TPROXY target in ip_tables_targets implies it.
_COMPONENTS = {
    'xt_TPROXY': ('CONFIG_NETFILTER_XT_TARGET_TPROXY', None, 'iptables TPROXY target', ('targets', 'TPROXY')),
    'xt_socket': ('CONFIG_NETFILTER_XT_MATCH_SOCKET', None, 'iptables socket match', ('matches', 'socket')),
    'nft_tproxy': ('CONFIG_NFT_TPROXY', None, 'nftables tproxy expression', None),
    'nft_socket': ('CONFIG_NFT_SOCKET', None, 'nftables socket expression', None),
    'nf_tproxy_ipv4': ('CONFIG_NF_TPROXY_IPV4', 'ipv4', 'IPv4 TPROXY core', ('targets', 'TPROXY')),
    'nf_tproxy_ipv6': ('CONFIG_NF_TPROXY_IPV6', 'ipv6', 'IPv6 TPROXY core', ('targets', 'TPROXY')),
    'nf_socket_ipv4': ('CONFIG_NF_SOCKET_IPV4', 'ipv4', 'IPv4 socket lookup', ('matches', 'socket')),
    'nf_socket_ipv6': ('CONFIG_NF_SOCKET_IPV6', 'ipv6', 'IPv6 socket lookup', ('matches', 'socket')),
}

_BACKEND_COMPONENTS = {
    'iptables': ('xt_TPROXY', 'xt_socket'),
    'nftables': ('nft_tproxy', 'nft_socket'),
}

_XTABLES_PREFIX = {'ipv4': 'ip', 'ipv6': 'ip6'}
_IPTABLES_COMMAND = {'ipv4': 'iptables', 'ipv6': 'ip6tables'}
_MODULE_SUFFIX = re.compile(r'\.ko(\.xz|\.zst|\.gz)?$')


def required_components(backend, families):
    """Names of the kernel components ``backend`` needs for ``families``, in load order."""
    if backend not in BACKENDS:
        raise ValueError('unknown backend %r' % (backend,))
    names = []
    for family in FAMILIES:
        if family in families:
            names += ['nf_tproxy_' + family, 'nf_socket_' + family]
    return names + list(_BACKEND_COMPONENTS[backend])


def _path(root, *parts):
    return os.path.join(root or '/', *[p.lstrip('/') for p in parts])


def _read(path):
    try:
        with open(path, 'r', encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except OSError:
        return None


def _module_name(path):
    """kernel/net/netfilter/xt_TPROXY.ko.zst -> xt_TPROXY (the kernel treats '-' as '_')."""
    return _MODULE_SUFFIX.sub('', os.path.basename(path)).replace('-', '_')


def parse_kernel_config(text):
    """Map CONFIG_* symbols to 'y', 'm', 'n' (``# CONFIG_X is not set``) or their value."""
    config = {}
    for line in text.splitlines():
        line = line.strip()
        unset = re.match(r'# (CONFIG_\w+) is not set$', line)
        if unset:
            config[unset.group(1)] = 'n'
        elif line.startswith('CONFIG_') and '=' in line:
            symbol, value = line.split('=', 1)
            config[symbol] = value.strip('"')
    return config


def _read_config(root, release):
    """Return (config dict, path read) from /proc/config.gz or /boot/config-<release>."""
    proc = _path(root, 'proc/config.gz')
    try:
        with gzip.open(proc, 'rt', encoding='utf-8', errors='replace') as handle:
            return parse_kernel_config(handle.read()), proc
    except (OSError, EOFError):
        pass
    boot = _path(root, 'boot', 'config-' + release)
    text = _read(boot)
    if text is not None:
        return parse_kernel_config(text), boot
    return None, None


def _module_index(path):
    """Map module name -> relative .ko path for modules.dep / modules.builtin."""
    text = _read(path)
    if text is None:
        return None
    index = {}
    for line in text.splitlines():
        relpath = line.split(':', 1)[0].strip()
        if relpath:
            index[_module_name(relpath)] = relpath
    return index


def _find_modules_dir(root, release):
    # kmod 33+ may be built with /usr/lib/modules; older systems use /lib/modules.
    for base in ('lib/modules', 'usr/lib/modules'):
        candidate = _path(root, base, release)
        if os.path.isdir(candidate):
            return candidate
    return _path(root, 'lib/modules', release)


def _scan_module_files(modules_dir):
    """Map module name -> path of every .ko file below ``modules_dir``."""
    found = {}
    for dirpath, _dirs, files in os.walk(modules_dir):
        for name in files:
            if _MODULE_SUFFIX.search(name):
                found.setdefault(_module_name(name), os.path.join(dirpath, name))
    return found


def _read_xtables(root):
    """Entries of /proc/net/ip{,6}_tables_{targets,matches}, keyed (family, kind); None if absent."""
    lists = {}
    for family, prefix in _XTABLES_PREFIX.items():
        for kind in ('targets', 'matches'):
            path = _path(root, 'proc/net', '%s_tables_%s' % (prefix, kind))
            text = _read(path)
            lists[(family, kind)] = (path, None if text is None else set(text.split()))
    return lists


def _os_release(root):
    ids = []
    text = _read(_path(root, 'etc/os-release')) or _read(_path(root, 'usr/lib/os-release')) or ''
    for line in text.splitlines():
        key, _sep, value = line.partition('=')
        if key in ('ID', 'ID_LIKE'):
            ids += value.strip().strip('"').split()
    return ids


def gather_kernel_facts(root='/'):
    """Read everything the decision needs once. Returns a plain dict."""
    release = (_read(_path(root, 'proc/sys/kernel/osrelease')) or '').strip() or os.uname().release
    proc_modules_path = _path(root, 'proc/modules')
    proc_modules = _read(proc_modules_path)
    modules_dir = _find_modules_dir(root, release)
    config, config_path = _read_config(root, release)
    return {
        'root': root or '/',
        'release': release,
        # No /proc/modules means the kernel was built without CONFIG_MODULES.
        'module_support': proc_modules is not None,
        'proc_modules_path': proc_modules_path,
        'proc_modules': set(line.split()[0] for line in (proc_modules or '').splitlines() if line.split()),
        'modules_dir': modules_dir,
        'modules_builtin': _module_index(os.path.join(modules_dir, 'modules.builtin')),
        'modules_dep': _module_index(os.path.join(modules_dir, 'modules.dep')),
        'module_files': _scan_module_files(modules_dir),
        'config': config,
        'config_path': config_path,
        'xtables': _read_xtables(root),
        'distro_ids': _os_release(root),
    }


def _state(name, state, evidence, facts):
    symbol, family, purpose, _trace = _COMPONENTS[name]
    return {'name': name, 'state': state, 'evidence': evidence, 'family': family or 'any',
            'purpose': purpose, 'config_symbol': symbol}


def _xtables_evidence(name, facts, families):
    trace = _COMPONENTS[name][3]
    if trace is None:
        return None
    kind, entry = trace
    family = _COMPONENTS[name][1]
    for fam in ([family] if family else families):
        path, entries = facts['xtables'][(fam, kind)]
        if entries is not None and entry in entries:
            return '%s lists %s and the kernel has no module support' % (path, entry)
    return None


def _builtin_evidence(name, facts, families):
    root = facts['root']
    builtin = facts['modules_builtin'] or {}
    if name in builtin:
        return '%s lists %s' % (os.path.join(facts['modules_dir'], 'modules.builtin'), builtin[name])
    symbol = _COMPONENTS[name][0]
    if facts['config'] and facts['config'].get(symbol) == 'y':
        return '%s: %s=y' % (facts['config_path'], symbol)
    sysdir = _path(root, 'sys/module', name)
    # Built-in code with parameters shows up in /sys/module too, but without initstate.
    if os.path.isdir(sysdir) and not os.path.exists(os.path.join(sysdir, 'initstate')):
        return '%s exists without initstate (built into the kernel)' % sysdir
    if not facts['module_support']:
        return _xtables_evidence(name, facts, families)
    return None


def _loaded_evidence(name, facts):
    if name in facts['proc_modules']:
        return '%s lists %s' % (facts['proc_modules_path'], name)
    initstate = _path(facts['root'], 'sys/module', name, 'initstate')
    if (_read(initstate) or '').strip() == 'live':
        return '%s is live' % initstate
    return None


def _loadable_evidence(name, facts):
    dep = facts['modules_dep'] or {}
    files = facts['module_files']
    if name in dep:
        path = os.path.join(facts['modules_dir'], dep[name])
        if os.path.exists(path):
            return '%s lists %s and the file exists' % (os.path.join(facts['modules_dir'], 'modules.dep'), dep[name])
    if name in files:
        return '%s exists (not in modules.dep: modprobe needs depmod -a first)' % files[name]
    return None


def _missing_evidence(name, facts):
    """What was checked, so the user sees why the answer is 'missing'."""
    symbol = _COMPONENTS[name][0]
    checked = []
    if not facts['module_support']:
        checked.append('%s is absent (kernel without module support)' % facts['proc_modules_path'])
    if facts['config'] is None:
        checked.append('no kernel config found (/proc/config.gz, /boot/config-%s)' % facts['release'])
    elif facts['config'].get(symbol, 'n') == 'n':
        checked.append('%s: %s is not set' % (facts['config_path'], symbol))
    else:
        checked.append('%s: %s=%s' % (facts['config_path'], symbol, facts['config'][symbol]))
    if name in facts['module_files']:
        checked.append('%s exists but cannot be loaded without module support' % facts['module_files'][name])
    elif facts['module_support']:
        checked.append('no %s.ko below %s' % (name, facts['modules_dir']))
    return '; '.join(checked)


def decide_component(name, facts, families):
    """Return the state dict of one component: builtin, loaded, loadable or missing."""
    evidence = _builtin_evidence(name, facts, families)
    if evidence:
        return _state(name, 'builtin', evidence, facts)
    if facts['module_support']:
        evidence = _loaded_evidence(name, facts)
        if evidence:
            return _state(name, 'loaded', evidence, facts)
        evidence = _loadable_evidence(name, facts)
        if evidence:
            return _state(name, 'loadable', evidence, facts)
    return _state(name, 'missing', _missing_evidence(name, facts), facts)


def inspect_kernel(root, backend, families):
    """Kernel facts summary and the list of component states for backend/families."""
    facts = gather_kernel_facts(root)
    components = [decide_component(name, facts, families) for name in required_components(backend, families)]
    return facts, components


def kernel_summary(facts):
    return {
        'release': facts['release'],
        'module_support': facts['module_support'],
        'config_source': facts['config_path'],
        'modules_dir': facts['modules_dir'],
    }


# ---------------------------------------------------------------- userspace

def parse_iptables_version(text):
    """'iptables v1.8.9 (nf_tables)' -> ('1.8.9', 'nf_tables'); before 1.8 there was only legacy."""
    match = re.search(r'v(\d[\w.]*)(?:\s+\((\w+)\))?', text or '')
    if not match:
        return None, None
    return match.group(1), match.group(2) or 'legacy'


def inspect_iptables(command, which, run):
    """What ``iptables``/``ip6tables`` knows: variant, TPROXY target, socket match."""
    path = which(command)
    info = {'command': command, 'path': path, 'version': None, 'variant': None,
            'tproxy_target': False, 'socket_match': False}
    if not path:
        return info
    _rc, out, err = run([path, '--version'])
    info['version'], info['variant'] = parse_iptables_version(out or err)
    # Without the extension iptables takes TPROXY for a chain name and prints only
    # the generic help; with it, the help ends with the extension's own section.
    _rc, out, _err = run([path, '-j', 'TPROXY', '--help'])
    info['tproxy_target'] = 'TPROXY target options' in (out or '')
    _rc, out, _err = run([path, '-m', 'socket', '--help'])
    info['socket_match'] = 'socket match options' in (out or '')
    return info


def inspect_nft(which, run):
    path = which('nft')
    info = {'command': 'nft', 'path': path, 'version': None}
    if path:
        _rc, out, err = run([path, '--version'])
        match = re.search(r'v(\d[\w.]*)', out or err or '')
        info['version'] = match.group(1) if match else None
    return info


def inspect_userspace(backend, families, which, run):
    """Dict keyed by command name (iptables, ip6tables or nft)."""
    if backend == 'nftables':
        return {'nft': inspect_nft(which, run)}
    return dict((_IPTABLES_COMMAND[f], inspect_iptables(_IPTABLES_COMMAND[f], which, run))
                for f in FAMILIES if f in families)


# ---------------------------------------------------------------- verdict

def _kernel_fix(component, facts):
    symbol = component['config_symbol']
    if not facts['module_support']:
        return 'use a kernel built with %s=y (this kernel has no module support, so =m cannot help)' % symbol
    release = facts['release']
    ids = facts['distro_ids']
    if 'ubuntu' in ids:
        package = 'install linux-modules-extra-%s (and linux-modules-%s)' % (release, release)
    elif 'debian' in ids:
        package = 'install linux-image-%s, which ships its modules' % release
    elif set(ids) & {'fedora', 'rhel', 'centos'}:
        package = 'install kernel-modules-extra-%s (and kernel-modules-%s)' % (release, release)
    else:
        package = 'install the package that ships the modules of kernel %s' % release
    return '%s, or use a kernel built with %s=y or =m' % (package, symbol)


def missing_pieces(components, userspace, facts):
    """Every missing piece as {'name', 'problem', 'fix'}, kernel first, then userspace."""
    pieces = []
    for component in components:
        if component['state'] == 'missing':
            pieces.append({'name': component['name'],
                           'problem': '%s (%s) is missing: %s' % (component['name'], component['purpose'],
                                                                  component['evidence']),
                           'fix': _kernel_fix(component, facts)})
    for command, info in sorted(userspace.items()):
        if not info['path']:
            package = 'nftables' if command == 'nft' else 'iptables'
            pieces.append({'name': command, 'problem': '%s command not found' % command,
                           'fix': 'install the %s package' % package})
            continue
        for key, what in (('tproxy_target', '-j TPROXY'), ('socket_match', '-m socket')):
            if key in info and not info[key]:
                pieces.append({'name': '%s %s' % (command, what),
                               'problem': '%s does not know %s' % (info['path'], what),
                               'fix': "install the distribution's full iptables package "
                                      '(with the xtables extensions libxt_TPROXY/libxt_socket)'})
    return pieces


def failure_message(pieces, backend):
    lines = ['This host cannot do TPROXY with the %s backend; %d piece(s) missing:' % (backend, len(pieces))]
    for piece in pieces:
        lines.append('- %s. Fix: %s.' % (piece['problem'], piece['fix']))
    return '\n'.join(lines)


def modprobe_command(modprobe, name, root, release):
    """modprobe argv; a non-default root makes modprobe read the same module tree we inspected."""
    argv = [modprobe]
    if (root or '/') != '/':
        argv += ['--dirname', root, '--set-version', release]
    return argv + ['--', name]


def support_report(root, backend, families, which, run):
    """What tproxy_kernel reports with load=false, fail_on_missing=false, without loading anything.

    ``loadable`` names the components a run with load=true would load.
    """
    facts, components = inspect_kernel(root, backend, families)
    userspace = inspect_userspace(backend, families, which, run)
    pieces = missing_pieces(components, userspace, facts)
    if pieces:
        msg = failure_message(pieces, backend)
    else:
        msg = 'TPROXY support complete for %s (%s); nothing loaded.' % (backend, ', '.join(families))
    return {
        'backend': backend,
        'families': list(families),
        'supported': not pieces,
        'components': dict((c['name'], dict((k, v) for k, v in c.items() if k != 'name')) for c in components),
        'userspace': userspace,
        'kernel': kernel_summary(facts),
        'loadable': [c['name'] for c in components if c['state'] == 'loadable'],
        'missing': [p['name'] for p in pieces],
        'msg': msg,
    }
