"""The bench's pure parts: what it parses, how it summarises, what its rules and knobs say."""

import pytest

import configs
import control
import load
import report
import rules


def test_parse_wrk_reads_the_lua_hook_line():
    out = "Running 1s test\n  1 threads\nBENCH-JSON {\"requests\": 10, \"p50_us\": 12}\n"
    assert load.parse_wrk(out) == {"requests": 10, "p50_us": 12}


def test_parse_wrk_refuses_output_without_a_summary():
    with pytest.raises(RuntimeError, match="no summary"):
        load.parse_wrk("unable to connect to 192.0.2.180:8080 Connection refused\n")


def _run(path, conns, rps, p50, cpu=None, target="static"):
    return {"target": target, "path": path, "conns": conns, "rps": rps, "p50_ms": p50, "p99_ms": p50 * 3,
            "machine_busy": 0.9, "errors": 0, "requests": int(rps), "cpu_us_per_req": cpu}


def test_summary_keeps_medians_and_compares_with_direct():
    runs = [_run("direct", 64, r, 0.5) for r in (100.0, 300.0, 200.0)]
    runs += [_run("envoy", 64, r, p, 40.0 + i) for i, (r, p) in enumerate([(50.0, 0.9), (70.0, 0.7), (60.0, 0.8)])]
    rows = {r["path"]: r for r in report.summarize(runs)}
    assert rows["direct"]["rps"] == 200.0 and rows["direct"]["repeats"] == 3
    assert rows["envoy"]["rps"] == 60.0
    assert rows["envoy"]["x_direct"] == pytest.approx(0.3)
    assert rows["envoy"]["added_p50_ms"] == pytest.approx(0.3)
    assert rows["envoy"]["cpu_us_per_req"] == 41.0
    assert rows["direct"]["cpu_us_per_req"] is None


def test_summary_without_direct_has_no_ratio():
    rows = report.summarize([_run("envoy", 1, 10.0, 0.1, 30.0)])
    assert rows[0]["x_direct"] is None and rows[0]["added_p50_ms"] is None


def test_recap_and_slowest_tasks_are_parsed():
    out = ("PLAY RECAP ****\n"
           "client                     : ok=3    changed=0    unreachable=0    failed=0    skipped=1\n"
           "router                     : ok=20   changed=2    unreachable=0    failed=1    skipped=0\n"
           "tproxy.envoy.router : Ensure the Envoy container runs ------------ 3.21s\n"
           "Gathering Facts --------------------------------------------------- 0.50s\n")
    recap = control.parse_recap(out)
    assert recap["router"] == {"ok": 20, "changed": 2, "unreachable": 0, "failed": 1}
    assert recap["client"]["changed"] == 0
    assert control.slowest_tasks(out)[0] == ("tproxy.envoy.router : Ensure the Envoy container runs", 3.21)


def test_direct_path_accepts_before_the_products_tproxy_rule():
    r = rules.path_rules("direct", 8080)
    assert r == {"mangle": [f"-A {rules.CHAIN} {rules.SCOPE} -m tcp --dport 8080 -j ACCEPT"]}


def test_tproxy_path_points_at_the_bench_proxy_on_loopback():
    mangle = rules.path_rules("tproxy", 80, 4997)["mangle"]
    assert "-m socket --transparent" in mangle[0]
    assert "--on-port 4997 --on-ip 127.0.0.1" in mangle[1]


def test_redirect_path_skips_tproxy_and_nats():
    r = rules.path_rules("redirect", 80, 4996)
    assert r["mangle"][0].endswith("-j ACCEPT")
    assert r["nat"][0].endswith("-j REDIRECT --to-ports 4996")


def test_product_path_adds_no_rule():
    assert rules.path_rules("product", 80) == {}


def test_every_bench_rule_is_scoped_to_client_and_web():
    for kind in ("direct", "tproxy", "redirect"):
        for table in rules.path_rules(kind, 80, 4999).values():
            for line in table:
                assert rules.SCOPE in line


ROLE_LIKE = {
    "static_resources": {
        "listeners": [{"filter_chains": [{
            "filter_chain_match": {"destination_port": 80},
            "filters": [{"name": configs.HCM, "typed_config": {
                "route_config": {"virtual_hosts": [{"request_headers_to_add": [{}],
                                                    "routes": [{"route": {"cluster": "c"}}]}]},
                "http_filters": [{"name": configs.ROUTER_FILTER, "typed_config": {}}]}}]}]}],
        "clusters": [{"name": "c", "typed_extension_protocol_options": {}}]}}


def test_product_safe_knobs_keep_the_added_headers_and_the_upstream_filter():
    tuned = configs.apply_knobs(ROLE_LIKE, configs.PRODUCT_SAFE)
    hcm = tuned["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["generate_request_id"] is False
    assert hcm["http_filters"][0]["typed_config"] == {"suppress_envoy_headers": True, "dynamic_stats": False}
    assert hcm["route_config"]["virtual_hosts"][0]["request_headers_to_add"] == [{}]
    assert "typed_extension_protocol_options" in tuned["static_resources"]["clusters"][0]
    assert "generate_request_id" not in str(ROLE_LIKE), "apply_knobs must not edit its input"


def test_tcp_proxy_replaces_http_with_l4_to_the_original_destination():
    l4 = configs.apply_knobs(ROLE_LIKE, ["tcp_proxy"])
    chain = l4["static_resources"]["listeners"][0]["filter_chains"][0]
    assert [f["name"] for f in chain["filters"]] == ["envoy.filters.network.tcp_proxy"]
    assert chain["filters"][0]["typed_config"]["cluster"] == "original_destination"
    assert "typed_extension_protocol_options" not in l4["static_resources"]["clusters"][0]


def test_haproxy_config_binds_transparently_and_targets_the_original_destination():
    cfg = configs.haproxy_config("http", 4997, 2, "/tmp/x")
    assert "bind 127.0.0.1:4997 transparent" in cfg
    assert "server original 0.0.0.0\n" in cfg and "mode http" in cfg
