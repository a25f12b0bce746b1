"""Each host runs the Debian release its image names in molecule.yml, and the hosts span more than
one release: converge, idempotence, verify and teardown of this one run covered each of them."""

import pytest
import testinfra
import yaml

from conftest import SCENARIO

PLATFORMS = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["platforms"]


def image_release(platform):
    """tproxy-envoy/node:trixie -> trixie."""
    return platform["image"].rsplit(":", 1)[1]


@pytest.mark.parametrize("platform", PLATFORMS, ids=[p["name"] for p in PLATFORMS])
def test_host_runs_the_release_its_image_names(platform):
    host = testinfra.get_host("docker://" + platform["name"])
    os_release = dict(line.split("=", 1) for line in host.file("/etc/os-release").content_string.splitlines()
                      if "=" in line)
    assert os_release["ID"] == "debian"
    assert os_release["VERSION_CODENAME"] == image_release(platform)


def test_the_router_role_ran_on_trixie_with_its_python_and_iptables():
    # What differs from bookworm where the roles run: Python 3.13 for the modules, iptables 1.8.11.
    host = testinfra.get_host("docker://router")
    assert host.check_output("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'") == "3.13"
    assert host.check_output("iptables --version").startswith("iptables v1.8.11 (nf_tables)")


def test_the_hosts_span_bookworm_and_trixie():
    assert {image_release(p) for p in PLATFORMS} >= {"bookworm", "trixie"}
