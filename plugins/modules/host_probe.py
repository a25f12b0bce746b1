#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_probe
short_description: Read what a role's preflight needs from a host in one module run
version_added: 0.2.0
description:
  - Reads, in one run on the host, everything the router and webserver roles check before any change -
    which programs exist, the output of read-only commands, which paths exist, the interfaces that carry
    an IPv4 address, the service manager, the state of containers on the local Docker engine, and whether
    the kernel and firewall tools can do TPROXY.
  - Each of these would otherwise be a task of its own, and each task is a round trip to the host.
  - Read-only - it changes nothing, so it runs in check mode too and never reports C(changed).
  - It reports and does not judge, except that a command that exits non-zero fails the module (see O(ok_stderr)),
    as does a Docker engine that does not answer. The caller decides what the answers mean.
author:
  - tproxy.envoy contributors (@tproxy)
options:
  tools:
    description:
      - Program names to look for on the host's C(PATH) and in the C(sbin) directories.
    type: list
    elements: str
    default: []
  commands:
    description:
      - Read-only commands to run, keyed by a name of the caller's choice; each value is the argv list.
      - Each runs without a shell, with C(LC_ALL=C) so that its messages can be matched.
      - A program that is not installed (the first element not found, or, for a path, absent) is not an error -
        its result has RV(commands.missing=true), RV(commands.rc=null) and empty output.
      - Any other non-zero exit fails the module, naming every failed command, unless O(ok_stderr) accepts it.
    type: dict
    default: {}
  ok_stderr:
    description:
      - Accepted failures - for a name of O(commands), a text which, found in the command's standard error,
        makes a non-zero exit an answer rather than an error (for example V(table does not exist) for
        C(ip route show table N) on a table nobody has used yet).
    type: dict
    default: {}
  paths:
    description:
      - Paths whose existence to report.
    type: list
    elements: path
    default: []
  links:
    description:
      - Report the names of the network interfaces that carry an IPv4 address (C(ip -j -4 addr show)),
        the set C(ansible_facts.interfaces) with an C(ipv4) key gives.
    type: bool
    default: false
  service_mgr:
    description:
      - Report the service manager, as fact gathering's C(ansible_service_mgr) would (same code), and set that
        fact, so that a play without fact gathering can use C(ansible_service_mgr).
    type: bool
    default: false
  containers:
    description:
      - Names of containers to inspect through the Docker engine's API on O(docker_socket) (C(GET /containers/NAME/json)).
      - Only the engine of this host; for an engine on another host use M(community.docker.docker_container_info) there.
    type: list
    elements: str
    default: []
  docker_socket:
    description:
      - The Docker engine's unix socket. When it does not exist there is no engine, and no container exists.
    type: path
    default: /var/run/docker.sock
  tproxy_kernel:
    description:
      - Check TPROXY support as M(tproxy.envoy.tproxy_kernel) does with O(tproxy.envoy.tproxy_kernel#module:load=false)
        and O(tproxy.envoy.tproxy_kernel#module:fail_on_missing=false) - it reports and loads nothing.
      - Unset, nothing is checked.
    type: dict
    suboptions:
      backend:
        description:
          - The firewall backend, as for M(tproxy.envoy.tproxy_kernel).
          - V(auto) picks V(iptables) when C(iptables-restore) is found, else V(nftables)
            (what the router role's C(router_firewall_backend=auto) picks).
        type: str
        choices: [auto, iptables, nftables]
        default: auto
      families:
        description:
          - The address families to intercept.
        type: list
        elements: str
        choices: [ipv4, ipv6]
        default: [ipv4]
      root:
        description:
          - Path prefix for C(/proc), C(/sys), C(/lib/modules) and C(/boot), as for M(tproxy.envoy.tproxy_kernel) (tests).
        type: path
        default: /
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It only reads, in check mode as in a normal run.
  diff_mode:
    support: none
  platform:
    platforms: linux
notes:
  - Not in the C(group/tproxy.envoy.tproxy) action group - its options are not those of the group's modules.
seealso:
  - module: tproxy.envoy.tproxy_kernel
  - module: community.docker.docker_container_info
"""

EXAMPLES = r"""
- name: Probe the router before any change
  tproxy.envoy.host_probe:
    tools: [iptables-restore, nft]
    tproxy_kernel:
      backend: auto
    commands:
      rules: [ip, rule, list]
      routes: [ip, route, show, table, "100"]
      iptables: [iptables-save]
      listeners: [ss, -Hltnp]
    ok_stderr:
      routes: table does not exist
    paths: [/var/run/docker.sock]
    links: true
    containers: [tproxy-envoy]
  register: probe

- name: Fail when Envoy's port is taken and Envoy is not running
  ansible.builtin.assert:
    that: >-
      probe.containers['tproxy-envoy'].container.State.Running | default(false)
      or probe.commands.listeners.stdout_lines | select('search', ':15001 ') | length == 0
"""

RETURN = r"""
tools:
  description: Each name of O(tools) and the path where it was found, or null.
  returned: always
  type: dict
  sample: {iptables-restore: /usr/sbin/iptables-restore, nft: null}
commands:
  description: The result of each command of O(commands), keyed by its name.
  returned: always
  type: dict
  sample:
    rules: {argv: [ip, rule, list], rc: 0, stdout: "0:\tfrom all lookup local", stdout_lines: ["0:\tfrom all lookup local"],
            stderr: "", missing: false, accepted: false}
  contains:
    argv:
      description: The command as run (its program resolved to a path), or as given when missing.
      type: list
      elements: str
    rc:
      description: Exit status; null when the program is missing.
      type: int
    stdout:
      description: Standard output.
      type: str
    stdout_lines:
      description: Standard output, line by line.
      type: list
      elements: str
    stderr:
      description: Standard error.
      type: str
    missing:
      description: Whether the program is not installed.
      type: bool
    accepted:
      description: Whether a non-zero exit was accepted by O(ok_stderr).
      type: bool
paths:
  description: Each path of O(paths) and whether it exists.
  returned: always
  type: dict
  sample: {/usr/local/sbin/tproxy-envoy-router: true}
links:
  description: Sorted names of the interfaces with an IPv4 address (the loopback included).
  returned: when O(links=true)
  type: list
  elements: str
  sample: [eth0, lo]
service_mgr:
  description: The service manager, as C(ansible_service_mgr) names it.
  returned: when O(service_mgr=true)
  type: str
  sample: systemd
ansible_facts:
  description: The fact C(ansible_service_mgr) (C(ansible_facts.service_mgr)), as fact gathering sets it.
  returned: when O(service_mgr=true)
  type: dict
  sample: {ansible_service_mgr: systemd}
engine:
  description: Whether O(docker_socket) exists.
  returned: when O(containers) is not empty
  type: bool
  sample: true
containers:
  description: For each name of O(containers), what M(community.docker.docker_container_info) returns.
  returned: always
  type: dict
  sample: {tproxy-envoy: {exists: true, container: {Name: /tproxy-envoy, State: {Running: true}}}}
  contains:
    exists:
      description: Whether the container exists.
      type: bool
    container:
      description: The engine's inspection of the container (C(docker inspect)), or null.
      type: dict
tproxy_kernel:
  description:
    - What M(tproxy.envoy.tproxy_kernel) returns (RV(tproxy.envoy.tproxy_kernel#module:supported),
      RV(tproxy.envoy.tproxy_kernel#module:components), RV(tproxy.envoy.tproxy_kernel#module:userspace),
      RV(tproxy.envoy.tproxy_kernel#module:kernel), RV(tproxy.envoy.tproxy_kernel#module:missing),
      RV(tproxy.envoy.tproxy_kernel#module:msg)), and the backend checked, the families, and the components
      a run with loading would load (C(loadable)).
  returned: when O(tproxy_kernel) is set
  type: dict
  sample:
    backend: iptables
    families: [ipv4]
    supported: true
    loadable: []
    missing: []
    msg: TPROXY support complete for iptables (ipv4); nothing loaded.
"""

import json
import os
import platform

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.facts.system.service_mgr import ServiceMgrFactCollector

from ansible_collections.tproxy.envoy.plugins.module_utils.docker_engine import DockerEngineError, container_info
from ansible_collections.tproxy.envoy.plugins.module_utils.kernel_support import support_report

_C_LOCALE = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'}


def _resolve(module, program):
    """The program's path, or None: a path must exist, a name is looked up like get_bin_path does."""
    if '/' in program:
        return program if os.path.exists(program) else None
    return module.get_bin_path(program)


def _run(module, name, argv, ok_text):
    path = _resolve(module, argv[0])
    if path is None:
        return {'argv': argv, 'rc': None, 'stdout': '', 'stdout_lines': [], 'stderr': '', 'missing': True,
                'accepted': False}, None
    argv = [path] + argv[1:]
    try:
        rc, out, err = module.run_command(argv, environ_update=_C_LOCALE, expand_user_and_vars=False,
                                          handle_exceptions=False)
    except OSError as exc:
        return None, '%s (%s) could not run: %s' % (name, ' '.join(argv), exc)
    accepted = rc != 0 and bool(ok_text) and ok_text in err
    result = {'argv': argv, 'rc': rc, 'stdout': out, 'stdout_lines': out.splitlines(), 'stderr': err,
              'missing': False, 'accepted': accepted}
    if rc != 0 and not accepted:
        return result, '%s (%s) failed with rc %d: %s' % (name, ' '.join(argv), rc, (err or out).strip())
    return result, None


def _links(module):
    ip = module.get_bin_path('ip')
    if not ip:
        module.fail_json(msg='links needs the ip command (iproute2), which was not found')
    rc, out, err = module.run_command([ip, '-j', '-4', 'addr', 'show'], environ_update=_C_LOCALE)
    if rc != 0:
        module.fail_json(msg='ip -j -4 addr show failed with rc %d: %s' % (rc, err.strip()))
    try:
        links = json.loads(out or '[]')
    except ValueError as exc:
        module.fail_json(msg='ip -j -4 addr show printed something that is not JSON (iproute2 too old?): %s' % exc)
    return sorted(set(link['ifname'] for link in links
                      if any(a.get('family') == 'inet' for a in link.get('addr_info') or [])))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tools=dict(type='list', elements='str', default=[]),
            commands=dict(type='dict', default={}),
            ok_stderr=dict(type='dict', default={}),
            paths=dict(type='list', elements='path', default=[]),
            links=dict(type='bool', default=False),
            service_mgr=dict(type='bool', default=False),
            containers=dict(type='list', elements='str', default=[]),
            docker_socket=dict(type='path', default='/var/run/docker.sock'),
            tproxy_kernel=dict(type='dict', options=dict(
                backend=dict(type='str', choices=['auto', 'iptables', 'nftables'], default='auto'),
                families=dict(type='list', elements='str', choices=['ipv4', 'ipv6'], default=['ipv4']),
                root=dict(type='path', default='/'),
            )),
        ),
        supports_check_mode=True,
    )
    params = module.params
    commands = params['commands']
    for name, argv in commands.items():
        if not isinstance(argv, list) or not argv or not all(isinstance(a, (str, int)) for a in argv):
            module.fail_json(msg='commands.%s must be a non-empty list of strings (an argv), not %r' % (name, argv))
    unknown = sorted(set(params['ok_stderr']) - set(commands))
    if unknown:
        module.fail_json(msg='ok_stderr names commands that commands does not have: %s' % ', '.join(unknown))

    result = dict(changed=False)
    result['tools'] = dict((tool, module.get_bin_path(tool)) for tool in params['tools'])

    kernel = params['tproxy_kernel']
    if kernel is not None:
        if not kernel['families']:
            module.fail_json(msg='tproxy_kernel.families must name at least one of ipv4, ipv6')
        backend = kernel['backend']
        if backend == 'auto':
            backend = 'iptables' if module.get_bin_path('iptables-restore') else 'nftables'
        result['tproxy_kernel'] = support_report(
            kernel['root'], backend, kernel['families'], which=module.get_bin_path,
            run=lambda argv: module.run_command(argv, environ_update=_C_LOCALE))

    result['commands'], errors = {}, []
    for name, argv in commands.items():
        ok_text = params['ok_stderr'].get(name)
        outcome, error = _run(module, name, [str(a) for a in argv], str(ok_text) if ok_text else None)
        if outcome is not None:
            result['commands'][name] = outcome
        if error:
            errors.append(error)

    result['paths'] = dict((path, os.path.exists(path)) for path in params['paths'])
    if params['links']:
        result['links'] = _links(module)
    if params['service_mgr']:
        # The facts' own code, so that the answer is the one gather_facts would give.
        found = ServiceMgrFactCollector().collect(module=module, collected_facts={'ansible_system': platform.system()})
        result['service_mgr'] = found['service_mgr']
        # Named as setup names it: ansible_service_mgr, and ansible_facts.service_mgr.
        result['ansible_facts'] = {'ansible_service_mgr': found['service_mgr']}

    result['containers'] = {}
    if params['containers']:
        result['engine'] = os.path.exists(params['docker_socket'])
        for name in params['containers']:
            if not result['engine']:
                result['containers'][name] = {'exists': False, 'container': None}
                continue
            try:
                result['containers'][name] = container_info(params['docker_socket'], name)
            except DockerEngineError as exc:
                errors.append(str(exc))

    if errors:
        module.fail_json(msg='; '.join(errors), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
