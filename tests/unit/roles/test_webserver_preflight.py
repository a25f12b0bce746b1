"""The webserver role's `preflight` entry point, run on this machine: a port another process
listens on is refused naming webserver_port; a free port passes. Needs `ss`, not root."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
PLAY = """
- name: Probe this machine as a web host
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the webserver role's preflight
      ansible.builtin.include_role:
        name: tproxy.envoy.webserver
        tasks_from: preflight
"""


def preflight(tmp_path, port):
    (tmp_path / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"), ANSIBLE_NOCOLOR="1")
    extra = {"webserver_port": port, "webserver_container_name": "tproxy-envoy-unit-test-absent",
             "ansible_python_interpreter": sys.executable}
    proc = subprocess.run([str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
                           "-e", json.dumps(extra), str(tmp_path / "play.yml")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_a_port_another_process_listens_on_is_refused_naming_the_variable(tmp_path, listener):
    rc, out = preflight(tmp_path, listener)
    assert rc != 0 and "webserver_port %d is already taken" % listener in out, out[-3000:]


def test_a_free_port_passes(tmp_path):
    with socket.socket() as sock:  # a port the kernel just found free
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rc, out = preflight(tmp_path, port)
    assert rc == 0, out[-3000:]
