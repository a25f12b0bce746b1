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

LAB_INVENTORY = inventory.load(PROJECT / "inventories" / "lab")
LAB = LAB_INVENTORY.addresses


@pytest.fixture(scope="session")
def lab():
    return dict(LAB)


@pytest.fixture(scope="session")
def lab6():
    """The hosts' IPv6 addresses: the lab inventory is dual stack, and this scenario runs it so."""
    addresses = dict(LAB_INVENTORY.addresses6)
    assert set(addresses) == set(LAB), "the lab inventory no longer gives every host an IPv6 address: %s" % addresses
    return addresses


def role_container(host, role):
    """docker inspect of the one container a role runs on ``host`` (by the label the roles set)."""
    ids = host.check_output("docker ps -q --filter label=io.github.tproxy.envoy.role=%s", role).split()
    assert len(ids) == 1, "%s: expected one container of the %s role, found %s" % (host, role, ids)
    return json.loads(host.check_output("docker inspect %s", ids[0]))[0]
