"""Shared helpers for the namespace scenario's testinfra tests."""

import json
import os
import pathlib
import sys

import pytest

PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).resolve().parents[3]))
# The checks both molecule scenarios share, and the reader of the lab inventory (the one home
# of the lab's addresses, which this scenario's hosts come from).
sys.path.insert(0, str(PROJECT / "tests" / "checks"))
sys.path.insert(0, str(PROJECT / "tools" / "lab"))
import inventory  # noqa: E402  pylint: disable=wrong-import-position

LAB = inventory.load(PROJECT / "inventories" / "lab").addresses


@pytest.fixture(scope="session")
def lab():
    return dict(LAB)


def role_container(host, role):
    """docker inspect of the one container a role runs on ``host`` (by the label the roles set)."""
    ids = host.check_output("docker ps -q --filter label=io.github.tproxy.envoy.role=%s", role).split()
    assert len(ids) == 1, "%s: expected one container of the %s role, found %s" % (host, role, ids)
    return json.loads(host.check_output("docker inspect %s", ids[0]))[0]
