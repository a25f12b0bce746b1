"""Shared helpers for the namespace scenario's testinfra tests."""

import json
import os
import pathlib
import subprocess

import pytest

PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).resolve().parents[3]))
LAB = {"client": "192.0.2.10", "router": "192.0.2.100", "web": "192.0.2.180"}


def in_netns(host, *argv, timeout=20, check=True):
    """Run argv in a lab host's network namespace, from the controller."""
    return subprocess.run(["ip", "netns", "exec", "tproxy-" + host, *argv], capture_output=True,
                          text=True, timeout=timeout, check=check)


@pytest.fixture(scope="session")
def project():
    return PROJECT


@pytest.fixture(scope="session")
def lab():
    return dict(LAB)


def docker_inspect(host, name):
    out = host.check_output("docker inspect %s", name)
    return json.loads(out)[0]
