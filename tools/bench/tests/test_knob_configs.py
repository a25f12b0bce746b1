"""Every knob's edit of the router role's rendered config is a config Envoy itself accepts."""

import os
import subprocess

import pytest

import configs
import run


def assert_envoy_accepts(path):
    """Envoy's validation of the config at path; it opens access log files, so the role's (a path on the
    router) is validated as a file beside the config, as the bench runs it."""
    config = configs.load(str(path))
    checked = str(path)
    if configs.move_file_access_logs(config, os.path.join(os.path.dirname(str(path)), "access.log")):
        checked = os.path.join(os.path.dirname(str(path)), "validated-" + os.path.basename(str(path)))
        configs.dump(config, checked)
    res = subprocess.run([run.envoy_binary(), "--mode", "validate", "-c", checked],
                         capture_output=True, text=True, check=False, timeout=60)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


@pytest.fixture(scope="module")
def role_config(role_renders):
    return configs.load(os.path.join(role_renders["l7"], "envoy-static.yaml"))


def test_the_roles_l4_ports_get_tcp_proxy_chains_envoy_accepts(role_renders):
    path = os.path.join(role_renders["l4"], "envoy-static.yaml")
    chains = configs.load(path)["static_resources"]["listeners"][0]["filter_chains"]
    kinds = {c["filter_chain_match"]["destination_port"]: c["filters"][0]["name"] for c in chains}
    assert kinds == {80: configs.HCM, 8080: "envoy.filters.network.tcp_proxy",
                     5432: "envoy.filters.network.tcp_proxy"}
    assert all(c["filters"][0]["typed_config"]["cluster"] == "original_destination"
               for c in chains if c["filter_chain_match"]["destination_port"] != 80)
    assert_envoy_accepts(path)


def test_each_render_has_the_bench_proxys_listener_and_admin_port(role_renders):
    config = configs.load(os.path.join(role_renders["l7"], "envoy-static.yaml"))
    assert config["static_resources"]["listeners"][0]["address"]["socket_address"] == {
        "address": "127.0.0.1", "port_value": 4998}
    assert config["admin"]["address"]["socket_address"]["port_value"] == 19001


def test_the_roles_envoy_arguments_come_without_the_config_path(role_renders):
    args = configs.role_envoy_args(role_renders["l7"])
    assert "-c" not in args and "--log-level" in args


@pytest.mark.parametrize("knobs", [(k,) for k in configs.KNOBS]
                         + [configs.PRODUCT_SAFE, configs.PRODUCT_SAFE + configs.COST_ONLY])
def test_envoy_validates_the_edited_config(role_config, knobs, tmp_path):
    path = tmp_path / "edited.yaml"
    configs.dump(configs.apply_knobs(role_config, knobs), str(path))
    assert_envoy_accepts(path)


def test_only_the_evidence_render_adds_headers_to_the_traffic(role_renders):
    def added(render):
        config = configs.load(os.path.join(role_renders[render], "envoy-static.yaml"))
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        cluster = config["static_resources"]["clusters"][0]
        upstream = cluster["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].get("http_filters", [])
        return (sorted(h["header"]["key"] for h in hcm["route_config"].get(
            "request_headers_to_add", [])), [f["name"] for f in upstream])

    assert added("l7") == ([], [])
    assert added("l7-evidence") == (
        ["x-request-downstream-local", "x-request-downstream-remote", "x-request-start-time"],
        ["envoy.filters.http.header_mutation", "envoy.filters.http.upstream_codec"])
    assert_envoy_accepts(os.path.join(role_renders["l7-evidence"], "envoy-static.yaml"))
