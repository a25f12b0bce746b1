"""Every knob's edit of the router role's rendered config is a config Envoy itself accepts."""

import subprocess

import pytest

import configs
import run


def assert_envoy_accepts(path):
    res = subprocess.run([run.envoy_binary(), "--mode", "validate", "-c", str(path)],
                         capture_output=True, text=True, check=False, timeout=60)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


@pytest.fixture(scope="module")
def role_config(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("render")
    dest = workdir / "role.yaml"
    configs.render_role_configs([{"dest": str(dest), "proxy_address": "127.0.0.1", "proxy_port": 4998,
                                  "admin_port": 19001, "intercept_ports": [80, 8080]}], str(workdir))
    return configs.load(str(dest))


def test_the_roles_l4_ports_get_tcp_proxy_chains_envoy_accepts(tmp_path):
    dest = tmp_path / "l4.yaml"
    configs.render_role_configs([{"dest": str(dest), "proxy_address": "127.0.0.1", "proxy_port": 4995,
                                  "admin_port": 19003, "intercept_ports": [80],
                                  "l4_ports": [8080, 5432]}], str(tmp_path))
    chains = configs.load(str(dest))["static_resources"]["listeners"][0]["filter_chains"]
    kinds = {c["filter_chain_match"]["destination_port"]: c["filters"][0]["name"] for c in chains}
    assert kinds == {80: configs.HCM, 8080: "envoy.filters.network.tcp_proxy",
                     5432: "envoy.filters.network.tcp_proxy"}
    assert all(c["filters"][0]["typed_config"]["cluster"] == "original_destination"
               for c in chains if c["filter_chain_match"]["destination_port"] != 80)
    assert_envoy_accepts(dest)


@pytest.mark.parametrize("knobs", [(k,) for k in configs.KNOBS]
                         + [configs.PRODUCT_SAFE, configs.PRODUCT_SAFE + configs.COST_ONLY])
def test_envoy_validates_the_edited_config(role_config, knobs, tmp_path):
    path = tmp_path / "edited.yaml"
    configs.dump(configs.apply_knobs(role_config, knobs), str(path))
    assert_envoy_accepts(path)
