#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netstate_set
short_description: Converge or remove one network state set of the netstate role in one run on the host
version_added: 0.2.0
description:
  - The engine of the C(tproxy.envoy.netstate) role (internal); a role task renders the files on the
    controller and this module does the rest on the host in one round trip.
  - With O(state=present) it reads the items the installed state script owned, writes the rule files,
    the state script and the boot unit that differ (each checked by its O(files[].validate) command first,
    then renamed into place), runs the script's C(check), its C(apply) when the live state differs, and
    C(remove-items) for the items the earlier script owned and this one does not, and deletes
    O(remove_paths) (rule files of a backend or family the state no longer has). It then enables the
    boot unit where systemd is the init system.
  - With O(state=absent) it runs the installed script's C(remove) (the script describes exactly what was
    installed), disables the boot unit and deletes O(remove_paths).
author:
  - tproxy.envoy contributors (@tproxy)
options:
  name:
    description: The state set's name, for messages.
    type: str
    required: true
  state:
    description: Whether the set is installed or removed.
    type: str
    choices: [present, absent]
    default: present
  script:
    description: Path of the state script (its C(check), C(apply), C(list), C(remove) and C(remove-items) commands).
    type: path
    required: true
  script_content:
    description: The rendered state script. Required with O(state=present).
    type: str
  files:
    description: Files the script reads (rule sets), written before the script is. Only with O(state=present).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Where the file goes; its directory is created (mode 0755) when missing.
        type: path
        required: true
      content:
        description: The file's whole content.
        type: str
        required: true
      mode:
        description: Octal permission bits, as a string.
        type: str
        default: '0644'
      validate:
        description: A command that checks the new content before it replaces the file; C(%s) is the candidate file.
        type: str
  unit:
    description: Path of the boot unit.
    type: path
    required: true
  unit_content:
    description: The rendered boot unit. Required with O(state=present).
    type: str
  remove_paths:
    description:
      - With O(state=absent), files deleted after the script removed the state.
      - With O(state=present), files deleted after the stale items were removed (rule files the
        state no longer reads); files that do not exist are no change.
    type: list
    elements: path
    default: []
  systemd_dir:
    description: Where systemd, when it is the init system, keeps its run state; its presence says so.
    type: path
    default: /run/systemd/system
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports the files that would change and the state script's C(check) result; changes nothing.
  diff_mode:
    support: full
    details: Each file that changes, before and after.
  platform:
    platforms: linux
"""

EXAMPLES = r"""
- name: Ensure the client's routes are in place
  tproxy.envoy.netstate_set:
    name: client
    script: /usr/local/sbin/tproxy-envoy-client
    script_content: "{{ lookup('ansible.builtin.template', 'netstate.sh.j2') }}"
    unit: /etc/systemd/system/tproxy-envoy-client.service
    unit_content: "{{ lookup('ansible.builtin.template', 'netstate.service.j2') }}"

- name: Ensure the router's state is gone
  tproxy.envoy.netstate_set:
    name: router
    state: absent
    script: /usr/local/sbin/tproxy-envoy-router
    unit: /etc/systemd/system/tproxy-envoy-router.service
    remove_paths: [/etc/tproxy-envoy/router.v4]
"""

RETURN = r"""
drift:
  description: What the state script's C(check) found different from the live state (empty when it matched).
  returned: state=present
  type: list
  elements: str
applied:
  description: Whether the script's C(apply) ran (or would have, in check mode).
  returned: state=present
  type: bool
removed_items:
  description: Items an earlier script owned and this one does not, removed (or to be removed).
  returned: state=present
  type: list
  elements: str
files_changed:
  description: The paths written (or that would be), or deleted with O(state=absent).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tproxy.envoy.plugins.module_utils import managed_files

CHECK_DIFFERS = 3


class NetstateSet:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = {'changed': False, 'files_changed': []}
        self.changes = managed_files.Changes(module, self.result, prefix='netstate %s: ' % module.params['name'])

    def run(self, *args, data=None, allowed=(0,)):
        cmd = [self.params['script']] + list(args)
        rc, out, err = self.module.run_command(cmd, data=data, binary_data=data is not None)
        if rc not in allowed:
            said = (err or out).strip()
            self.module.fail_json(
                msg="netstate %s: '%s' failed (exit %d): %s" % (self.params['name'], ' '.join(args), rc, said),
                rc=rc, stdout=out, stderr=err, **self.result)
        return rc, out

    def items(self):
        return self.run('list')[1].splitlines() if os.path.exists(self.params['script']) else []

    def put(self, path, content, mode, validate=None):
        """Write one file that differs; True when it did (or would)."""
        changed = self.changes.write(path, content, mode, validate)['changed']
        if changed:
            self.result['files_changed'].append(path)
        return changed

    def systemd(self):
        return os.path.isdir(self.params['systemd_dir'])

    def systemctl(self, *args, allowed=(0,)):
        rc, out, err = self.module.run_command(['systemctl'] + list(args))
        if rc not in allowed:
            self.module.fail_json(msg="netstate %s: 'systemctl %s' failed: %s" % (self.params['name'], ' '.join(args), err.strip()),
                                  **self.result)
        return rc

    def present(self):
        for key in ('script_content', 'unit_content'):
            if self.params[key] is None:
                self.module.fail_json(msg="netstate %s: %s is required with state=present" % (self.params['name'], key))
        # The earlier script says what it installed; read it before it is replaced.
        previous = self.items()
        for spec in self.params['files']:
            self.put(spec['path'], spec['content'], int(spec['mode'], 8), spec.get('validate'))
        script_changed = self.put(self.params['script'], self.params['script_content'], 0o755)
        if self.module.check_mode and script_changed:
            # A script that is not on the host yet cannot be asked: the state differs.
            self.result.update(drift=['state not applied yet'], applied=True, removed_items=[])
        else:
            rc, out = self.run('check', allowed=(0, CHECK_DIFFERS))
            self.result['drift'] = out.splitlines() if rc == CHECK_DIFFERS else []
            self.result['applied'] = rc == CHECK_DIFFERS
            if rc == CHECK_DIFFERS:
                self.result['changed'] = True
                if not self.module.check_mode:
                    self.run('apply')
            # After the new state is in place, so that a change never leaves a moment without it.
            current = self.items()
            stale = [item for item in previous if item not in current]
            self.result['removed_items'] = stale
            if stale:
                self.result['changed'] = True
                if not self.module.check_mode:
                    self.run('remove-items', data=''.join(item + '\n' for item in stale).encode())
        # Files of what this state no longer has (its items are gone, the script no longer reads them).
        self.remove_files(self.params['remove_paths'])
        unit_changed = self.put(self.params['unit'], self.params['unit_content'], 0o644)
        if self.systemd():
            if unit_changed and not self.module.check_mode:
                self.systemctl('daemon-reload')
            name = os.path.basename(self.params['unit'])
            if self.systemctl('is-enabled', '--quiet', name, allowed=range(256)) != 0:
                self.result['changed'] = True
                if not self.module.check_mode:
                    self.systemctl('enable', name)

    def absent(self):
        if os.path.exists(self.params['script']):
            self.result['changed'] = True
            if not self.module.check_mode:
                self.run('remove')
        name = os.path.basename(self.params['unit'])
        if os.path.exists(self.params['unit']) and self.systemd():
            if self.systemctl('is-enabled', '--quiet', name, allowed=range(256)) == 0:
                self.result['changed'] = True
                if not self.module.check_mode:
                    self.systemctl('disable', name)
        self.remove_files([self.params['unit'], self.params['script']] + self.params['remove_paths'])

    def remove_files(self, paths):
        for path in paths:
            if self.changes.remove(path):
                self.result['files_changed'].append(path)

    def main(self):
        getattr(self, self.params['state'])()
        self.changes.exit()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            script=dict(type='path', required=True),
            script_content=dict(type='str'),
            files=dict(type='list', elements='dict', default=[], options=dict(
                path=dict(type='path', required=True),
                content=dict(type='str', required=True),
                mode=dict(type='str', default='0644'),
                validate=dict(type='str'),
            )),
            unit=dict(type='path', required=True),
            unit_content=dict(type='str'),
            remove_paths=dict(type='list', elements='path', default=[]),
            systemd_dir=dict(type='path', default='/run/systemd/system'),
        ),
        supports_check_mode=True,
    )
    NetstateSet(module).main()


if __name__ == '__main__':
    main()
