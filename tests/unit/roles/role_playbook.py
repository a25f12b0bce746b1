"""Run a play against a JSON inventory on the controller only, as the roles' `validate` tests do."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
# The role each inventory group plays, as site.yml's first play pairs them.
ROLES = {"routers": "router", "webservers": "webserver", "clients": "client"}
# site.yml's validate step, for every host of every group (ROLES as site_roles in the play's vars).
VALIDATE_TASK = """
    - name: Validate the inputs of the roles this host plays
      ansible.builtin.include_role:
        name: "tproxy.envoy.{{ item.value }}"
        tasks_from: validate%s
      loop: "{{ site_roles | dict2items }}"
      when: inventory_hostname in groups[item.key]
"""


def run_play(tmp_path, inventory, play, *extra):
    """ansible-playbook ``play`` (text) on ``inventory`` (a dict); its JSON report."""
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(play)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i",
                           str(tmp_path / "inventory.json"), str(tmp_path / "play.yml"), *extra],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    return json.loads(proc.stdout)
