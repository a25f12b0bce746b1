"""Helpers for the AWS tests: run Ansible against the moto server and read its answers.

Ansible runs as an ordinary account, as a controller without root would: when the tests run as
root, every Ansible command is started through `setpriv` as the unprivileged CONTROLLER_UID (no
supplementary groups, no capabilities), with a HOME of its own (conftest.py). A task that asked
for root on the controller (`become` on a task delegated to localhost) then fails, because that
account has no way to become root; so does one that lost the AWS credentials or endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
REGION = "us-east-1"
# The account Ansible runs as when the tests run as root: nobody/nogroup, which owns nothing and
# may not become root.
CONTROLLER_UID = 65534
CONTROLLER_GID = 65534
# Documentation ranges only (RFC 5737): a VPC of 198.51.100.0/24 and one /25 subnet.
VPC_CIDR = "198.51.100.0/24"
SUBNET_CIDR = "198.51.100.0/25"


def tool(name):
    """A console script of the venv that runs the tests (moto_server, ansible-playbook, ...)."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} not found next to {sys.executable}: install requirements.txt into this venv")
    return str(path)


def as_controller(argv):
    """argv run as the unprivileged controller account (unchanged when the tests are not root)."""
    if os.geteuid() != 0:
        return list(argv)
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.fail("setpriv (util-linux) is missing: the AWS tests run Ansible as an ordinary account through it")
    return [setpriv, f"--reuid={CONTROLLER_UID}", f"--regid={CONTROLLER_GID}", "--clear-groups",
            "--inh-caps=-all", "--", *argv]


def run(argv, env, timeout=600):
    """Run an Ansible tool as the controller account, from the repository root; the caller checks the status."""
    return subprocess.run(as_controller(argv), env=env, cwd=str(REPO), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _run_local_json(env, tool_name, *args, inventories=("localhost,",)):
    """Run an Ansible tool (by default against `localhost,`) with the local connection; return (rc, JSON report)."""
    sources = [arg for source in inventories for arg in ("-i", str(source))]
    proc = run([tool(tool_name), *sources, "-c", "local", "-e",
                f"ansible_python_interpreter={sys.executable}", *args], env)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"{tool_name} gave no JSON report (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def run_playbook(env, playbook, *extra, inventories=("localhost,",)):
    """ansible-playbook, by default on the implicit-free `localhost,` inventory; returns (rc, json report)."""
    return _run_local_json(env, "ansible-playbook", *extra, str(playbook), inventories=inventories)


def run_module(env, args, *flags):
    """Run tproxy.envoy.ec2_source_dest_check once with `ansible` on localhost; return its result."""
    _rc, report = _run_local_json(env, "ansible", "localhost", "-m", "tproxy.envoy.ec2_source_dest_check",
                                  "-a", json.dumps(args), *flags)
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def plain(value):
    """ansible-inventory --list wraps strings as {'__ansible_unsafe': ...}; unwrap them."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def client(service, endpoint, key="testing", secret="testing"):
    """A boto3 client bound to a local moto endpoint (refuses anything else)."""
    assert endpoint.startswith("http://127.0.0.1:"), endpoint
    return boto3.client(
        service, region_name=REGION, endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server(log_dir, **settings):
    """A moto_server on a free 127.0.0.1 port, stopped by its PID on exit; yields its URL."""
    port = free_port()
    log = log_dir / "moto_server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **settings),
        )
    try:
        # Wait for the port only: an HTTP probe would count as one of moto's requests.
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start on port {port}: {log.read_text()}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
