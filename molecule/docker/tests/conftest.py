"""Shared helpers for the docker scenario's testinfra tests.

The hosts are containers on the controller's engine; Envoy and httpbin are containers on the
same engine, so the tests inspect them from the controller with the docker client.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

SCENARIO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", SCENARIO.parents[1]))
# The checks both molecule scenarios share.
sys.path.insert(0, str(PROJECT / "tests" / "checks"))


def scenario_addresses():
    """Each host's address on the scenario network, from its one home: the platforms in molecule.yml
    (the inventory's private_ip_address, which the roles route by, reads them there too)."""
    platforms = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["platforms"]
    return {platform["name"]: platform["networks"][0]["ipv4_address"] for platform in platforms}


def engine(*argv, timeout=30, check=True):
    """Run the docker client against the controller's engine."""
    return subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout, check=check)


def inspect(name):
    return json.loads(engine("inspect", name).stdout)[0]


def role_container(role):
    """docker inspect of the one container a role runs on the engine (by the label the roles set)."""
    ids = engine("ps", "-q", "--filter", "label=io.github.tproxy.envoy.role=" + role).stdout.split()
    assert len(ids) == 1, "expected one container of the %s role, found %s" % (role, ids)
    return inspect(ids[0])


def playbook(path, *args, timeout=240):
    """ansible-playbook against the scenario's own inventory (the one molecule generated).

    Returns the CompletedProcess with ``output``: stdout and stderr (where failures go), no colour.
    """
    inventory = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    result = subprocess.run(["ansible-playbook", "-i", str(inventory), str(path), *args], cwd=PROJECT, env=env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    result.output = result.stdout + result.stderr
    return result


@pytest.fixture(scope="session")
def addr():
    return scenario_addresses()
