#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_settings
short_description: Set kernel parameters now and at boot, keeping the values found before, and restore them
version_added: 0.2.0
description:
  - All of a role's kernel parameters (sysctls) in one run on the host, where a loop of
    C(ansible.posix.sysctl) costs one round trip per parameter.
  - With O(state=present) it keeps the live values of O(settings) found before the first run in O(saved)
    (written once, never overwritten), owns O(file) (a C(sysctl.d) file that holds exactly O(settings),
    one C(key=value) line each, so that boot applies them) and sets each live value that differs.
  - With O(state=restored) it sets each parameter that O(saved) lists back to its saved value, where it differs.
    It deletes no file.
author:
  - tproxy.envoy contributors (@tproxy)
options:
  settings:
    description:
      - Parameter names (dotted, like C(net.ipv4.ip_forward)) and their values. Only with O(state=present).
    type: dict
    default: {}
  file:
    description: The C(sysctl.d) file that holds O(settings). Only with O(state=present).
    type: path
  saved:
    description: JSON file of the values found before the first run.
    type: path
    required: true
  state:
    description: Set O(settings), or put back the values O(saved) holds.
    type: str
    choices: [present, restored]
    default: present
  proc_root:
    description: Where the kernel's parameters are read and written (tests point it to a directory of their own).
    type: path
    default: /proc/sys
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports the parameters and files that would change; changes nothing.
  diff_mode:
    support: full
    details: The live values before and after, and the file's content.
  platform:
    platforms: linux
"""

EXAMPLES = r"""
- name: Ensure forwarding and loose reverse-path filtering
  tproxy.envoy.kernel_settings:
    settings:
      net.ipv4.ip_forward: 1
      net.ipv4.conf.all.rp_filter: 2
    file: /etc/sysctl.d/60-tproxy-envoy.conf
    saved: /etc/tproxy-envoy/sysctl-before.json

- name: Restore the values found before the first run
  tproxy.envoy.kernel_settings:
    saved: /etc/tproxy-envoy/sysctl-before.json
    state: restored
"""

RETURN = r"""
set:
  description: The parameters whose live value was set (or would be), with their new values.
  returned: always
  type: dict
  sample: {net.ipv4.ip_forward: "1"}
before:
  description: The live values of the parameters as this run found them.
  returned: always
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tproxy.envoy.plugins.module_utils import managed_files


def normalize(value):
    """A parameter's value as /proc/sys prints it, for comparing: fields separated by one tab."""
    return '\t'.join(str(value).split())


class KernelSettings:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = {'changed': False, 'set': {}, 'before': {}}
        self.changes = managed_files.Changes(module, self.result, prefix='kernel_settings: ')

    def proc_path(self, key):
        if not key or '/' in key or '..' in key or key.startswith('.'):
            self.module.fail_json(msg="kernel_settings: %r is not a parameter name (dotted, like net.ipv4.ip_forward)" % key)
        return os.path.join(self.params['proc_root'], key.replace('.', '/'))

    def read(self, key):
        try:
            with open(self.proc_path(key), encoding='utf-8') as handle:
                return handle.read().strip()
        except OSError as err:
            self.module.fail_json(msg="kernel_settings: cannot read %s: %s" % (key, err), **self.result)

    def write(self, key, value):
        try:
            with open(self.proc_path(key), 'w', encoding='utf-8') as handle:
                handle.write(str(value))
        except OSError as err:
            self.module.fail_json(msg="kernel_settings: cannot set %s to %s: %s" % (key, value, err), **self.result)

    def converge(self, wanted):
        """Set each live value of wanted that differs."""
        before, after = {}, {}
        for key, value in wanted.items():
            live = self.read(key)
            self.result['before'][key] = live
            if normalize(live) != normalize(value):
                before[key], after[key] = live, str(value)
                self.result['set'][key] = str(value)
                self.result['changed'] = True
                if not self.module.check_mode:
                    self.write(key, value)
        if before and self.module._diff:
            self.changes.diffs.append({'before_header': 'kernel parameters', 'after_header': 'kernel parameters',
                                       'before': ''.join('%s = %s\n' % item for item in before.items()),
                                       'after': ''.join('%s = %s\n' % item for item in after.items())})

    def present(self):
        settings = self.params['settings']
        if not self.params['file']:
            self.module.fail_json(msg="kernel_settings: file is required with state=present")
        saved = self.params['saved']
        if not os.path.exists(saved):
            # Only the first run's values are the host's own: later runs find ours.
            found = {key: self.read(key) for key in settings}
            self.changes.write(saved, json.dumps(found, indent=4, sort_keys=True) + '\n', 0o644)
        self.changes.write(self.params['file'], ''.join('%s=%s\n' % (key, value) for key, value in settings.items()), 0o644)
        self.converge(settings)

    def restored(self):
        try:
            with open(self.params['saved'], encoding='utf-8') as handle:
                saved = json.load(handle)
        except FileNotFoundError:
            return
        except ValueError as err:
            self.module.fail_json(msg="kernel_settings: %s is not the JSON this module writes: %s" % (self.params['saved'], err))
        self.converge(saved)

    def main(self):
        try:
            getattr(self, self.params['state'])()
        except OSError as err:
            self.module.fail_json(msg="kernel_settings: %s" % err, **self.result)
        self.changes.exit()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            settings=dict(type='dict', default={}),
            file=dict(type='path'),
            saved=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'restored'], default='present'),
            proc_root=dict(type='path', default='/proc/sys'),
        ),
        supports_check_mode=True,
    )
    KernelSettings(module).main()


if __name__ == '__main__':
    main()
