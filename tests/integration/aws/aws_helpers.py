"""Helpers for the AWS tests: run Ansible against the moto server and read its answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
REGION = "us-east-1"
# Documentation ranges only (RFC 5737): a VPC of 198.51.100.0/24 and one /25 subnet.
VPC_CIDR = "198.51.100.0/24"
SUBNET_CIDR = "198.51.100.0/25"


def tool(name):
    """A console script of the venv that runs the tests (moto_server, ansible-playbook, ...)."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} not found next to {sys.executable}: install requirements.txt into this venv")
    return str(path)


def run(argv, env, timeout=600):
    """Run a command from the repository root; the caller checks the exit status."""
    return subprocess.run(argv, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout, check=False)


def run_playbook(env, playbook, *extra):
    """ansible-playbook on the implicit-free `localhost,` inventory; returns (rc, json report)."""
    proc = run(
        [
            tool("ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            *extra,
            str(playbook),
        ],
        env,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"ansible-playbook gave no JSON report (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, report


def run_module(env, args, *flags):
    """Run tproxy.envoy.ec2_source_dest_check once with `ansible` on localhost; return its result."""
    proc = run(
        [
            tool("ansible"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "localhost",
            "-m",
            "tproxy.envoy.ec2_source_dest_check",
            "-a",
            json.dumps(args),
            *flags,
        ],
        env,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"ansible gave no JSON report (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
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
