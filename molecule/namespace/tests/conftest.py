"""Shared helpers for the namespace scenario's testinfra tests."""

import json
import os
import pathlib
import sys

import pytest

PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).resolve().parents[3]))
# The checks both molecule scenarios share.
sys.path.insert(0, str(PROJECT / "tests" / "checks"))
LAB = {"client": "192.0.2.10", "router": "192.0.2.100", "web": "192.0.2.180"}


@pytest.fixture(scope="session")
def project():
    return PROJECT


@pytest.fixture(scope="session")
def lab():
    return dict(LAB)


def docker_inspect(host, name):
    out = host.check_output("docker inspect %s", name)
    return json.loads(out)[0]
