"""Issue 30: the lab's own container in the bench, the machine each figure names, what travels
between machines (ratios, instruction counts, simulated misses) and the README that says it."""

import json

import pytest

import configs
import deployed
import instructions
import lab
import paths
import readme
import report
import run


def test_the_deployment_adds_the_static_port_to_the_labs_intercepted_ports():
    assert deployed.bench_vars() == {"router_intercept_ports": [80, paths.STATIC_PORT]}
    assert deployed.bench_vars({"router_access_log": "off"})["router_access_log"] == "off"


def test_site_yml_runs_for_the_routers_with_the_variables_or_the_labs_alone():
    argv = deployed.site_argv_extra({"router_intercept_ports": [80, 8080]})
    assert argv[:2] == ["--limit", "routers"] and json.loads(argv[3]) == {"router_intercept_ports": [80, 8080]}
    assert deployed.site_argv_extra(None) == ["--limit", "routers"]


def test_each_deployed_variant_is_a_product_path_on_the_static_responder_with_one_role_variable():
    by_name = {p.name: p for p in paths.PATHS}
    assert set(by_name["envoy-product"].targets) == {"static", "httpbin"} and not by_name["envoy-product"].deployment
    for name, (_label, variables) in paths.DEPLOYED_VARIANTS.items():
        assert by_name[name].proxy == "product" and by_name[name].targets == ("static",)
        assert by_name[name].deployment == name and len(variables) == 1
        assert all(var.startswith("router_") for var in variables)


@pytest.mark.parametrize("argv, variants", [([], True), (["--smoke"], False),
                                            (["--smoke", "--paths", "envoy-product,product-stdout"], True)])
def test_the_smoke_deploys_the_defaults_only_unless_a_variant_is_named(argv, variants):
    selected = run.data_path_selection(run.parse_args(argv))[0]
    assert "envoy-product" in [p.name for p in selected]
    assert any(p.deployment for p in selected) is variants


CACHE_DUMP = """version: 1
creator: callgrind-3.19.0
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
summary: 1000 400 200 50 20 10 5 4 3 300 30 40 8
"""


def test_a_dump_with_the_cache_simulation_gives_every_event_and_the_instructions():
    events = instructions.dump_events(CACHE_DUMP)
    assert events["Ir"] == 1000 and events["I1mr"] == 50 and events["Bim"] == 8
    assert instructions.dump_instructions(CACHE_DUMP) == 1000
    argv = instructions.callgrind_argv(["envoy"], "/w/cg", caches=True)
    assert "--cache-sim=yes" in argv and "--branch-sim=yes" in argv and argv[-1] == "envoy"
    assert "--cache-sim=yes" not in instructions.callgrind_argv(["envoy"], "/w/cg")


def test_the_machine_names_its_cpu_cores_clock_kernel_mitigations_and_counters():
    m = lab.machine()
    assert m["cpus"] >= 1 and m["kernel"] and "pmu" in m["counters"]
    label = report.machine_label({"cpu": "AMD EPYC", "cpus": 2, "cpu_mhz": 2445, "kernel": "6.18"})
    assert label == "AMD EPYC, 2 vCPU at 2445 MHz, kernel 6.18"
    details = report.machine_details({"virt": "kvm", "mitigations": {"spectre_v2": "Mitigation: Retpolines"},
                                      "counters": {"pmu": False, "perf_event_paranoid": 2}})
    assert "Spectre v2: Mitigation: Retpolines" in details and "hardware performance counters: none" in details


def test_the_knobs_that_price_the_roles_choices_edit_the_config_as_said():
    config = {"static_resources": {"listeners": [{"filter_chains": [{"filters": [{"name": configs.HCM, "typed_config": {
        "@type": "hcm", "stat_prefix": "tproxy_80", "access_log": [{"name": configs.FILE_LOGGER}],
        "http_filters": [{"name": configs.ROUTER_FILTER, "typed_config": {"dynamic_stats": False}}]}}]}]}],
        "clusters": [{"name": "original_destination", "typed_extension_protocol_options": {}}]}}
    on = configs.apply_knobs(config, ["dynamic_stats"])
    hcm = on["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["http_filters"][0]["typed_config"]["dynamic_stats"] is True
    minimal = configs.apply_knobs(config, ["minimal_hcm"])
    hcm = minimal["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert configs.access_loggers(minimal) == [] and hcm["stat_prefix"] == "tproxy_80"
    assert [f["name"] for f in hcm["http_filters"]] == [configs.ROUTER_FILTER]
    assert "typed_extension_protocol_options" not in minimal["static_resources"]["clusters"][0]


def _row(path, cpu, x_direct=0.4, target="static", conns=64, **extra):
    return {"target": target, "path": path, "conns": conns, "rps": 1000.0 * x_direct, "x_direct": x_direct,
            "cpu_us_per_req": cpu, "added_p50_ms": 0.1, **extra}


def _results(date, cpu_model, role_cpu, product_cpu=None):
    summary = [_row("direct", None, 1.0), _row("envoy-tproxy", role_cpu, 0.45), _row("envoy-tcp", 17.0, 0.63),
               _row("haproxy-http", 16.0, 0.66)]
    if product_cpu:
        summary += [_row("envoy-product", product_cpu, 0.44, user_us_per_req=20.0, sys_us_per_req=12.0,
                         ctxsw_per_req=0.5),
                    _row("product-stdout", product_cpu * 1.5, 0.3, carrier_cpu_us_per_req=9.0)]
    return {"date": f"{date}T10:00:00", "machine": {"cpu": cpu_model, "cpus": 2, "kernel": "6.18"},
            "summary": summary,
            "paths": {"envoy-product": {"label": "(b')"},
                      "product-stdout": {"label": "(b'1)", "deployment": {"router_access_log": "stdout"}}},
            "profile": {"envoy-role": {"per_request": 150000}, "envoy-tcp": {"per_request": 16000}}}


def test_the_deployed_table_compares_the_container_with_the_bench_role_row():
    text = "\n".join(readme.deployed_section(_results("2026-12-07", "AMD EPYC", 33.0, 34.0)))
    assert "| as deployed: the role's defaults | 0.44 | 34.0 | 20.0 / 12.0 | 0.50 | – |" in text
    assert "| `router_access_log: stdout` | 0.30 | 51.0 | – | – | 9.0 |" in text
    assert "34.0 µs per request against 33.0 µs" in text and "+3%, within 10%" in text
    assert "+55%, **not** within" in "\n".join(readme.deployed_section(_results("2026-12-07", "x", 22.0, 34.0)))
    assert readme.deployed_section(_results("2026-12-07", "x", 22.0)) == []


def test_the_machines_table_lists_every_run_with_its_machine_and_the_spread_per_machine():
    history = [_results("2026-12-06", "AMD EPYC", 33.0), _results("2026-12-07", "AMD EPYC", 35.0),
               _results("2026-12-08", "Intel Xeon", 100.0)]
    history[1]["summary"][1]["x_direct"] = 0.41
    text = "\n".join(readme.machines_section(history))
    assert "| 2026-12-08 | Intel Xeon, 2 vCPU, kernel 6.18 | 0.45 | 100.0 | 0.63 | 17.0 | 0.66 | 150,000 | 16,000 |" in text
    assert "AMD EPYC: 0.41–0.45× over 2 runs" in text and "Intel Xeon: 0." not in text
    assert readme.machines_section(history[:1]) == []


def test_two_machines_are_compared_per_path_against_its_user_space_instructions():
    history = [_results("2026-12-05", "Intel Xeon", 61.0), _results("2026-12-07", "AMD EPYC", 33.0)]
    text = "\n".join(readme.machine_pair(history))
    assert "AMD EPYC: 2026-12-07, Intel Xeon: 2026-12-05" in text
    # (61.0 - 33.0) µs over 150,000 instructions: 0.19 ns each; L4: 17.0 - 17.0 over 16,000.
    assert "| Envoy HTTP (b) | 150,000 | 33.0 | 61.0 | +28.0 | +0.19 |" in text
    assert "| Envoy L4 (e) | 16,000 | 17.0 | 17.0 | +0.0 | +0.00 |" in text
    assert readme.machine_pair(history[1:]) == []
