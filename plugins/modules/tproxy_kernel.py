#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tproxy_kernel
short_description: Check that the kernel and firewall tools support TPROXY and the socket match, and load what is loadable
version_added: 0.1.0
description:
  - Decides for every kernel component the chosen firewall backend needs (the TPROXY target and the
    socket match, and the per-family cores they use) one of four states, with the evidence that decided it.
  - C(builtin) the kernel has it compiled in - C(modules.builtin) lists it, the kernel config
    (C(/proc/config.gz) or C(/boot/config-<release>)) says C(=y), or, on a kernel without module
    support (no C(/proc/modules)), C(/proc/net/ip_tables_targets) or C(/proc/net/ip_tables_matches)
    (C(ip6_tables_*) for IPv6) list it.
  - C(loaded) C(/proc/modules) lists it or C(/sys/module/<name>/initstate) is C(live).
  - C(loadable) C(modules.dep) of the running kernel lists it and the C(.ko) (C(.ko.xz), C(.ko.zst), C(.ko.gz)) file exists.
  - C(missing) none of the above; the message says what was checked and what fixes it.
  - It also checks the userspace tools - that C(iptables) (and C(ip6tables) for IPv6) know C(-j TPROXY) and C(-m socket),
    and which variant they are (C(nf_tables) or C(legacy)); or that C(nft) exists for the nftables backend.
  - Loadable components are loaded with C(modprobe), one by one, and checked again afterwards. Nothing is
    loaded in check mode or on a kernel without module support.
  - Asking C(iptables) about an extension may make a module kernel auto-load that extension, as any
    C(iptables) rule using it would.
author:
  - tproxy.envoy contributors (@tproxy)
options:
  backend:
    description:
      - The firewall backend the interception rules will use.
      - V(iptables) needs C(xt_TPROXY) and C(xt_socket); V(nftables) needs C(nft_tproxy) and C(nft_socket).
        Both need C(nf_tproxy_<family>) and C(nf_socket_<family>) for each of O(families).
    type: str
    choices: [iptables, nftables]
    default: iptables
  families:
    description:
      - The address families to intercept.
    type: list
    elements: str
    choices: [ipv4, ipv6]
    default: [ipv4]
  load:
    description:
      - Load the components that are C(loadable) with C(modprobe).
      - V(false) only reports. Loadable components still count as supported then, because the kernel
        loads them on demand when a rule first uses them.
    type: bool
    default: true
  fail_on_missing:
    description:
      - Fail, listing every missing piece and what fixes it, when a component is missing, a module
        failed to load, or the userspace tools lack TPROXY support.
      - V(false) returns the same information with RV(supported=false) instead, for use in C(when:).
    type: bool
    default: true
  root:
    description:
      - Path prefix under which C(/proc), C(/sys), C(/lib/modules) (or C(/usr/lib/modules)), C(/boot) and
        C(/etc/os-release) are read. The kernel release is read from C(<root>/proc/sys/kernel/osrelease).
      - Meant for tests that simulate another kernel with a fake tree. The userspace tools are always the host's own.
      - With a root other than C(/), C(modprobe) is called with C(--dirname <root> --set-version <release>)
        so it loads from the tree that was inspected.
    type: path
    default: /
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It reports what would be loaded, and C(changed) is true when something would be.
  diff_mode:
    support: full
    details: The diff lists the modules loaded (or that would be), each from its state before to C(loaded).
  platform:
    platforms: linux
  action_group:
    description: Use C(group/tproxy.envoy.tproxy) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - tproxy.envoy.tproxy
notes:
  - Does not need root to report; loading modules does.
seealso:
  - name: Linux TPROXY documentation
    description: How transparent proxying works with iptables and nftables.
    link: https://docs.kernel.org/networking/tproxy.html
"""

EXAMPLES = r"""
- name: Ensure the kernel and iptables can intercept IPv4 with TPROXY
  tproxy.envoy.tproxy_kernel:
    backend: iptables
    families: [ipv4]

- name: Report TPROXY support for dual stack on nftables without loading or failing
  tproxy.envoy.tproxy_kernel:
    backend: nftables
    families: [ipv4, ipv6]
    load: false
    fail_on_missing: false
  register: tproxy_support

- name: Show why TPROXY is not available
  ansible.builtin.debug:
    msg: "{{ tproxy_support.msg }}"
  when: not tproxy_support.supported
"""

RETURN = r"""
supported:
  description: True when every component is C(builtin), C(loaded) or C(loadable) (loaded unless O(load=false)) and the userspace tools are complete.
  returned: always
  type: bool
  sample: true
components:
  description: State of each kernel component, keyed by module name.
  returned: always
  type: dict
  sample:
    xt_TPROXY:
      state: builtin
      evidence: "/proc/config.gz: CONFIG_NETFILTER_XT_TARGET_TPROXY=y"
      family: any
      purpose: iptables TPROXY target
      config_symbol: CONFIG_NETFILTER_XT_TARGET_TPROXY
    nf_tproxy_ipv4:
      state: loaded
      evidence: "/proc/modules lists nf_tproxy_ipv4"
      family: ipv4
      purpose: IPv4 TPROXY core
      config_symbol: CONFIG_NF_TPROXY_IPV4
  contains:
    state:
      description: One of C(builtin), C(loaded), C(loadable), C(missing) - after loading, unless in check mode.
      type: str
    evidence:
      description: The file or line that decided the state, or what was checked when missing.
      type: str
    family:
      description: C(ipv4), C(ipv6) or C(any).
      type: str
    purpose:
      description: What the component provides.
      type: str
    config_symbol:
      description: The kernel config option that builds it.
      type: str
userspace:
  description: The firewall tools, keyed by command (C(iptables), C(ip6tables) or C(nft)).
  returned: always
  type: dict
  sample:
    iptables:
      command: iptables
      path: /usr/sbin/iptables
      version: 1.8.9
      variant: nf_tables
      tproxy_target: true
      socket_match: true
  contains:
    path:
      description: Where the command was found, or null.
      type: str
    version:
      description: Version it reports.
      type: str
    variant:
      description: C(nf_tables) or C(legacy) (iptables only).
      type: str
    tproxy_target:
      description: Whether it knows C(-j TPROXY) (iptables only).
      type: bool
    socket_match:
      description: Whether it knows C(-m socket) (iptables only).
      type: bool
kernel:
  description: The kernel that was inspected.
  returned: always
  type: dict
  sample:
    release: 6.1.0-18-amd64
    module_support: true
    config_source: /boot/config-6.1.0-18-amd64
    modules_dir: /lib/modules/6.1.0-18-amd64
loaded_modules:
  description: Modules this run loaded with modprobe, or would load in check mode.
  returned: always
  type: list
  elements: str
  sample: [nf_tproxy_ipv4, xt_TPROXY]
missing:
  description: Names of the missing pieces - kernel components, or commands such as C(iptables -j TPROXY) or C(nft).
  returned: always
  type: list
  elements: str
  sample: []
msg:
  description: A summary; on failure, every missing piece with its fix.
  returned: always
  type: str
  sample: TPROXY support complete for iptables (ipv4).
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tproxy.envoy.plugins.module_utils.kernel_support import (
    failure_message,
    inspect_kernel,
    inspect_userspace,
    kernel_summary,
    missing_pieces,
    modprobe_command,
)


def _load(module, facts, loadable):
    """modprobe each name; return the pieces that failed."""
    modprobe = module.get_bin_path('modprobe')
    if not modprobe:
        return [{'name': name, 'problem': '%s is loadable but modprobe was not found' % name,
                 'fix': 'install kmod'} for name in loadable]
    failed = []
    for name in loadable:
        rc, _out, err = module.run_command(modprobe_command(modprobe, name, facts['root'], facts['release']))
        if rc != 0:
            failed.append({'name': name, 'problem': 'modprobe %s failed (rc=%d): %s' % (name, rc, err.strip()),
                           'fix': 'see the kernel log (dmesg); the module file may not match the running kernel'})
    return failed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backend=dict(type='str', choices=['iptables', 'nftables'], default='iptables'),
            families=dict(type='list', elements='str', choices=['ipv4', 'ipv6'], default=['ipv4']),
            load=dict(type='bool', default=True),
            fail_on_missing=dict(type='bool', default=True),
            root=dict(type='path', default='/'),
        ),
        supports_check_mode=True,
    )
    backend, families, root = module.params['backend'], module.params['families'], module.params['root']
    if not families:
        module.fail_json(msg='families must name at least one of ipv4, ipv6')

    facts, components = inspect_kernel(root, backend, families)
    before = dict((c['name'], c['state']) for c in components)
    loadable = [c['name'] for c in components if c['state'] == 'loadable']
    to_load = loadable if module.params['load'] and facts['module_support'] else []

    load_failures = []
    if to_load and not module.check_mode:
        load_failures = _load(module, facts, to_load)
        # Trust the kernel, not modprobe's exit code: inspect again.
        facts, components = inspect_kernel(root, backend, families)
        for component in components:
            if component['name'] in to_load and component['state'] == 'loadable' \
                    and component['name'] not in [f['name'] for f in load_failures]:
                load_failures.append({'name': component['name'],
                                      'problem': 'modprobe %s succeeded but %s does not list it'
                                                 % (component['name'], facts['proc_modules_path']),
                                      'fix': 'check the kernel log (dmesg) and the modprobe configuration'})
    loaded = [name for name in to_load if name not in [f['name'] for f in load_failures]]

    # Asked after the kernel so the states above are what the host had before this run.
    userspace = inspect_userspace(
        backend, families,
        which=module.get_bin_path,
        run=lambda argv: module.run_command(argv, environ_update={'LANG': 'C', 'LC_ALL': 'C'}),
    )
    pieces = load_failures + missing_pieces(components, userspace, facts)
    result = dict(
        changed=bool(loaded),
        supported=not pieces,
        components=dict((c['name'], dict((k, v) for k, v in c.items() if k != 'name')) for c in components),
        userspace=userspace,
        kernel=kernel_summary(facts),
        loaded_modules=loaded,
        missing=[p['name'] for p in pieces],
    )
    if loaded and module._diff:
        result['diff'] = {'before': dict((n, before[n]) for n in loaded), 'after': dict((n, 'loaded') for n in loaded)}

    if pieces:
        result['msg'] = failure_message(pieces, backend)
        if module.params['fail_on_missing']:
            module.fail_json(**result)
        module.exit_json(**result)
    done = ('would load ' if module.check_mode else 'loaded ') + ', '.join(loaded) if loaded else 'nothing to load'
    result['msg'] = 'TPROXY support complete for %s (%s); %s.' % (backend, ', '.join(families), done)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
