"""The bench's pure parts: what it parses, how it summarises, what its rules and knobs say."""

import json
import os

import pytest

import configs
import control
import instructions
import lab
import load
import paths
import readme
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
    assert r == {"mangle": [f"-A {rules.CHAIN} -p tcp -m tcp --dport 8080 -j ACCEPT"]}


def _role_chains(render_dir):
    """The role's mangle chains as its render names them: (interception chain, divert chain)."""
    with open(os.path.join(render_dir, "netstate.json"), encoding="utf-8") as f:
        chains = [c for c in json.load(f)["netstate_iptables"] if c["table"] == "mangle"]
    return (next(c["chain"] for c in chains if c.get("jump_from") == "PREROUTING"),
            next(c["chain"] for c in chains if not c.get("jump_from")))


def test_tproxy_path_is_the_roles_own_rule_set_for_one_port_in_the_bench_chains(role_renders):
    role = configs.read(os.path.join(role_renders["haproxy"], "rules.v4"))
    intercept, divert = _role_chains(role_renders["haproxy"])
    rename = {intercept: rules.CHAIN, divert: rules.DIVERT}
    role_mangle = role.split("*mangle\n", 1)[1].split("COMMIT", 1)[0].splitlines()
    # The role's lines, chain names swapped token by token, minus its TPROXY rule for port 80.
    expected = [" ".join(rename.get(t, t) for t in line.split(" ")) for line in role_mangle
                if line.startswith("-A ") and not ("-j TPROXY " in line and "--dport 80 " in line)]
    mangle = rules.path_rules("tproxy", 8080, 4997, role)["mangle"]
    assert mangle == expected
    tproxy = [line for line in mangle if "-j TPROXY " in line]
    assert len(tproxy) == 1 and "--dport 8080 " in tproxy[0]
    assert "--on-port 4997 --on-ip 127.0.0.1 " in tproxy[0]
    mark = tproxy[0].split("--tproxy-mark ", 1)[1].split()[0]
    assert f"-A {rules.DIVERT} " in "\n".join(mangle) and f"--set-xmark {mark}" in "\n".join(mangle)


def test_tproxy_path_refuses_a_port_the_role_did_not_intercept(role_renders):
    role = configs.read(os.path.join(role_renders["haproxy"], "rules.v4"))
    with pytest.raises(ValueError, match="intercepts no port 443"):
        rules.path_rules("tproxy", 443, 4997, role)


def test_redirect_path_skips_tproxy_and_nats():
    r = rules.path_rules("redirect", 80, 4996)
    assert r["mangle"][0].endswith("-j ACCEPT")
    assert r["nat"][0].endswith("-j REDIRECT --to-ports 4996")


def test_product_path_adds_no_rule():
    assert rules.path_rules("product", 80) == {}


def test_the_bench_chains_are_reached_only_by_client_to_web_tcp():
    assert rules.JUMP[:6] == ["-s", f"{lab.CLIENT}/32", "-d", f"{lab.WEB}/32", "-p", "tcp"]
    assert rules.JUMP[-2:] == ["-j", rules.CHAIN]


def test_every_path_refills_every_bench_chain():
    text = rules.restore_input(rules.path_rules("direct", 80))
    for table, chains in rules.CHAINS.items():
        section = text.split(f"*{table}\n", 1)[1].split("COMMIT", 1)[0]
        assert all(f":{chain} - [0:0]" in section for chain in chains)
        assert all(line.split()[1] in chains for line in section.splitlines() if line.startswith("-A "))


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
    tuned = configs.apply_knobs(ROLE_LIKE, ("no_request_id", "suppress_envoy_headers") + configs.PRODUCT_SAFE)
    hcm = tuned["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["generate_request_id"] is False
    assert hcm["http_filters"][0]["typed_config"] == {"suppress_envoy_headers": True}
    assert tuned["static_resources"]["listeners"][0]["connection_balance_config"] == {"exact_balance": {}}
    assert hcm["route_config"]["virtual_hosts"][0]["request_headers_to_add"] == [{}]
    assert "typed_extension_protocol_options" in tuned["static_resources"]["clusters"][0]
    assert "generate_request_id" not in str(ROLE_LIKE), "apply_knobs must not edit its input"


def test_haproxy_config_binds_transparently_and_targets_the_original_destination():
    cfg = configs.haproxy_config("http", 4997, 2, "/tmp/x")
    assert "bind 127.0.0.1:4997 transparent" in cfg
    assert "server original 0.0.0.0\n" in cfg and "mode http" in cfg


def test_generic_proxy_knob_routes_every_request_to_the_original_destination():
    l7 = configs.apply_knobs(ROLE_LIKE, ["generic_proxy_http1"])
    chain = l7["static_resources"]["listeners"][0]["filter_chains"][0]
    assert [f["name"] for f in chain["filters"]] == ["envoy.filters.network.generic_proxy"]
    gp = chain["filters"][0]["typed_config"]
    assert gp["codec_config"]["typed_config"]["@type"].endswith("codecs.http1.v3.Http1CodecConfig")
    action = gp["route_config"]["routes"]["on_no_match"]["action"]["typed_config"]
    assert action["cluster"] == "original_destination"
    assert "typed_extension_protocol_options" not in l7["static_resources"]["clusters"][0]


def test_callgrind_dump_total_and_per_request():
    dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 3400000\ntotals: 3400000\n"
    assert instructions.dump_instructions(dump) == 3400000
    assert instructions.per_request(3400000, 200) == 17000
    with pytest.raises(ValueError):
        instructions.dump_instructions("events: Ir\n")
    with pytest.raises(ValueError, match="no request"):
        instructions.per_request(3400000, 0)


def test_callgrind_wraps_the_proxy_command_unchanged():
    argv = instructions.callgrind_argv(["haproxy", "-db", "-f", "x.cfg"], "/w/callgrind-h")
    assert argv[0] == "valgrind" and "--tool=callgrind" in argv
    assert "--callgrind-out-file=/w/callgrind-h.%p" in argv
    assert argv[-4:] == ["haproxy", "-db", "-f", "x.cfg"]


def test_profiled_proxies_have_one_worker_own_ports_and_the_named_knob_sets():
    proxies = paths.profiled_proxies({"tuned": ["no_stats"], "lean": ["no_stats", "exact_balance"]})
    by_name = {p.name: p for p in proxies}
    assert by_name["envoy-tuned"].knobs == ("no_stats",)
    assert by_name["envoy-lean"].knobs == ("no_stats", "exact_balance")
    assert by_name["envoy-role"].knobs == ()
    assert all(p.concurrency == 1 for p in proxies)
    taken = [p.port for p in proxies] + [p.admin_port for p in proxies if p.admin_port]
    assert len(taken) == len(set(taken))
    assert not set(taken) & {p.port for p in paths.PROXIES}


def test_profile_table_compares_with_haproxy_in_the_same_mode():
    profiled = {
        "envoy-role": {"label": "Envoy HTTP", "engine": "envoy", "mode": "http", "knobs": [],
                       "per_request": 150000},
        "envoy-tcp": {"label": "Envoy TCP", "engine": "envoy", "mode": "tcp", "knobs": [],
                      "per_request": 20000},
        "haproxy-http": {"label": "HAProxy HTTP", "engine": "haproxy", "mode": "http", "knobs": [],
                         "per_request": 30000},
        "haproxy-tcp": {"label": "HAProxy TCP", "engine": "haproxy", "mode": "tcp", "knobs": [],
                        "per_request": 4000},
    }
    table = "\n".join(report.profile_markdown(profiled))
    assert "| Envoy HTTP | none | 150,000 | 5.0 |" in table
    assert "| Envoy TCP | none | 20,000 | 5.0 |" in table
    assert report.profile_markdown({}) == []


def _results_for_readme():
    summary = [
        {"target": "static", "path": "direct", "conns": 64, "rps": 100000.0, "x_direct": 1.0,
         "cpu_us_per_req": None, "added_p50_ms": 0.0},
        {"target": "static", "path": "direct", "conns": 1, "rps": 30000.0, "x_direct": 1.0,
         "cpu_us_per_req": None, "added_p50_ms": 0.0},
        {"target": "static", "path": "envoy-tproxy", "conns": 64, "rps": 25000.0, "x_direct": 0.25,
         "cpu_us_per_req": 60.04, "added_p50_ms": 1.9},
        {"target": "static", "path": "envoy-tproxy", "conns": 1, "rps": 7000.0, "x_direct": 0.23,
         "cpu_us_per_req": 90.0, "added_p50_ms": 0.1},
    ]
    return {"date": "2026-11-26T12:00:00", "machine": {"cpus": 2, "cpu": "Xeon", "kernel": "6.18"},
            "paths": {"direct": {"label": "(a) direct"}, "envoy-tproxy": {"label": "(b) Envoy"}},
            "summary": summary, "profile": {},
            "control": {"steps": [{"name": "site.yml cold", "seconds": 33.0},
                                  {"name": "site.yml warm (changed=0 expected)", "seconds": 29.04},
                                  {"name": "teardown.yml", "seconds": 16.5}]}}


def test_readme_section_shows_64_connection_rates_and_the_1_connection_latency():
    text = readme.section(_results_for_readme())
    assert "| (a) direct | 100000 | 1.00 | – | – |" in text
    assert "| (b) Envoy | 25000 | 0.25 | 60.0 | +0.100 ms |" in text
    assert "`site.yml` cold 33.0 s, warm 29.0 s, `teardown.yml` 16.5 s." in text


def test_readme_section_replaces_only_the_text_between_the_markers():
    text = f"intro\n{readme.BEGIN}\nold table\n{readme.END}\noutro\n"
    assert readme.replace(text, "new") == f"intro\n{readme.BEGIN}\nnew\n{readme.END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        readme.replace("no markers here", "new")
