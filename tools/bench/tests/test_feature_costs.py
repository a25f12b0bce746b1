"""Issue 16's costs in the bench: the access log on and off, a policy of 100 host rules, the TLS
port; what the bench renders for them, what it sends, and how it reports them."""

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import configs
import instructions
import lab
import load
import paths
import procs
import readme
import report
import run
from test_knob_configs import assert_envoy_accepts

DEFAULT_LOG = "/var/log/tproxy-envoy/access.log"
SETTINGS = {"router_access_log": DEFAULT_LOG, "router_policy": [], "router_policy_default": "allow"}


def _listener(render_dir):
    return configs.load(os.path.join(render_dir, "envoy-static.yaml"))["static_resources"]["listeners"][0]


def test_the_lab_router_logs_to_the_default_file_with_no_policy_as_the_role_defaults():
    assert lab.router_settings() == SETTINGS


def test_render_items_set_the_mode_ports_access_log_and_policy_of_each_proxy():
    http, tls = paths.target_ports(tls=False), paths.target_ports(tls=True)
    assert tls == [paths.TLS_PORT] and paths.TLS_PORT not in http and paths.STATIC_PORT in http
    items = {name: configs.render_item(paths.proxy(name), f"/w/{name}", SETTINGS)
             for name in ("envoy-role", "envoy-log-off", "envoy-policy", "envoy-tls", "envoy-tcp",
                          "haproxy-http")}
    assert items["envoy-role"]["access_log"] == DEFAULT_LOG and items["envoy-role"]["policy"] == []
    assert items["envoy-role"]["intercept_ports"] == http and items["envoy-role"]["tls_ports"] == []
    assert items["envoy-log-off"]["access_log"] == "off"
    assert len(items["envoy-policy"]["policy"]) == 100 and items["envoy-policy"]["policy_default"] == "deny"
    assert items["envoy-tls"]["tls_ports"] == tls and items["envoy-tls"]["intercept_ports"] == http
    assert items["envoy-tcp"]["l4_ports"] == http + tls and items["envoy-tcp"]["intercept_ports"] == []
    assert "admin_port" not in items["haproxy-http"] and "access_log" not in items["haproxy-http"]


def test_the_policy_is_100_allow_rules_and_the_load_sends_the_last_ones_host():
    rules = paths.policy_rules()
    assert len(rules) == 100 and len({r["name"] for r in rules}) == 100
    assert all(r["action"] == "allow" and r["hosts"][0].endswith(".example.com") for r in rules)
    assert rules[-1]["hosts"] == [paths.policy_host()]
    assert paths.proxy("envoy-policy").headers == (f"Host: {paths.policy_host()}",)


def test_request_headers_are_the_proxys_then_the_targets():
    by_name = {p.name: p for p in paths.PATHS}
    assert run.request_headers(by_name["envoy-policy"], "static") == (f"Host: {paths.policy_host()}",)
    assert run.request_headers(by_name["envoy-tls"], "tls-new") == ("Connection: close",)
    assert run.request_headers(by_name["direct"], "tls") == ()
    assert run.request_headers(by_name["envoy-product"], "httpbin") == ()


def test_each_new_path_has_a_proxy_and_the_direct_path_covers_every_target():
    by_name = {p.name: p for p in paths.PATHS}
    assert set(by_name["direct"].targets) == set(paths.TARGETS)
    assert set(by_name["envoy-tls"].targets) == set(paths.TLS_TARGETS)
    assert set(paths.TLS_TARGETS) <= set(by_name["envoy-tcp"].targets)
    for name in ("envoy-log-off", "envoy-policy", "envoy-tls"):
        assert paths.proxy(by_name[name].proxy).engine == "envoy"
    taken = [p.port for p in paths.PROXIES] + [p.admin_port for p in paths.PROXIES if p.admin_port]
    assert len(taken) == len(set(taken))


def test_wrk_sends_each_header():
    argv = load.wrk_argv("https://192.0.2.180:8443/", 16, 2, headers=("Connection: close", "Host: a.example.com"))
    assert argv[-7:] == ["-H", "Connection: close", "-H", "Host: a.example.com",
                         "-s", load.LUA, "https://192.0.2.180:8443/"]
    assert "-H" not in load.wrk_argv("http://192.0.2.180:8080/", 1, 1)


def test_access_loggers_are_found_at_any_depth():
    config = {"static_resources": {"listeners": [{"filter_chains": [{"filters": [{"typed_config": {
        "access_log": [{"name": configs.STDOUT_LOGGER}]}}]}]}]}}
    assert configs.access_loggers(config) == [configs.STDOUT_LOGGER]
    assert configs.stdout_access_log(config)
    assert not configs.stdout_access_log({"a": [{"access_log": [{"name": "envoy.access_loggers.file"}]}]})


def test_the_default_render_logs_to_a_file_and_the_log_off_render_logs_nothing(role_renders):
    default = configs.load(os.path.join(role_renders["l7"], "envoy-static.yaml"))
    assert not configs.stdout_access_log(default) and set(configs.access_loggers(default)) == {configs.FILE_LOGGER}
    assert configs.access_loggers(configs.load(os.path.join(role_renders["envoy-log-off"],
                                                            "envoy-static.yaml"))) == []
    assert_envoy_accepts(os.path.join(role_renders["envoy-log-off"], "envoy-static.yaml"))


def test_the_policy_render_looks_up_100_host_rules_by_name_on_the_http_ports(role_renders):
    listener = _listener(role_renders["envoy-policy"])
    chain = next(c for c in listener["filter_chains"] if c["name"] == f"http-{paths.STATIC_PORT}")
    hcm = chain["filters"][0]["typed_config"]
    hosts = hcm["route_config"]["virtual_hosts"]
    # One virtual host per rule, then the catch-all; Envoy finds the Host's by hash.
    assert len(hosts) == 101 and hosts[-1]["domains"] == ["*"]
    last = next(vh for vh in hosts if paths.policy_host() in vh["domains"])
    per_host = last["typed_per_filter_config"]["envoy.filters.http.rbac"]["rbac"]
    assert per_host["matcher"]["on_no_match"]["action"]["name"] == "site-100"
    assert "matcher_list" not in per_host["matcher"], "nothing but the Host's own rule is evaluated"
    rbac = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.rbac")["typed_config"]
    assert rbac["matcher"]["on_no_match"]["action"]["typed_config"]["action"] == "DENY"
    assert_envoy_accepts(os.path.join(role_renders["envoy-policy"], "envoy-static.yaml"))


def test_the_tls_render_inspects_the_tls_port_and_forwards_it_at_l4(role_renders):
    listener = _listener(role_renders["envoy-tls"])
    assert "envoy.filters.listener.tls_inspector" in [f["name"] for f in listener["listener_filters"]]
    tls_chains = [c for c in listener["filter_chains"] if c["name"].startswith(f"tls-{paths.TLS_PORT}")]
    assert tls_chains and all(c["filters"][0]["name"] == "envoy.filters.network.tcp_proxy" for c in tls_chains)
    assert_envoy_accepts(os.path.join(role_renders["envoy-tls"], "envoy-static.yaml"))
    l4 = _listener(role_renders["envoy-tcp"])
    assert "envoy.filters.listener.tls_inspector" not in [f["name"] for f in l4["listener_filters"]]


def test_the_tls_render_gives_the_bench_rules_for_the_tls_port(role_renders):
    role = configs.read(os.path.join(role_renders["envoy-tls"], "rules.v4"))
    tproxy = [line for line in run.rules.path_rules("tproxy", paths.TLS_PORT, 4991, role)["mangle"]
              if "-j TPROXY " in line]
    assert len(tproxy) == 1 and f"--dport {paths.TLS_PORT} " in tproxy[0]


def test_tls_certificate_is_self_signed_for_the_name(tmp_path):
    cert_path, key_path = configs.tls_certificate(str(tmp_path), "www.example.com")
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "www.example.com"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.com"]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc)
    assert os.stat(key_path).st_mode & 0o077 == 0


def test_nginx_serves_tls_only_when_asked():
    plain = configs.nginx_config("192.0.2.180", 8080, "/w")
    assert " ssl;" not in plain and plain.count("server {") == 1
    tls = configs.nginx_config("192.0.2.180", 8080, "/w", tls_port=8443, cert="/w/c.pem", key="/w/k.pem")
    assert "listen 192.0.2.180:8443 ssl;" in tls and "ssl_certificate /w/c.pem;" in tls
    assert "ssl_certificate_key /w/k.pem;" in tls and tls.count("server {") == 2


def test_file_access_logs_are_moved_to_the_bench_and_counted(tmp_path):
    config = {"static_resources": {"listeners": [{"filter_chains": [{"filters": [{"typed_config": {
        "access_log": [{"name": configs.FILE_LOGGER, "typed_config": {"path": DEFAULT_LOG}},
                       {"name": configs.STDOUT_LOGGER, "typed_config": {}}]}}]}]}]}}
    assert configs.move_file_access_logs(config, str(tmp_path / "a.log")) == 1
    logs = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["access_log"]
    assert logs[0]["typed_config"]["path"] == str(tmp_path / "a.log") and logs[1]["typed_config"] == {}
    (tmp_path / "a.log").write_text("{}\n{}\n{}\n")
    assert procs.count_lines(str(tmp_path / "a.log")) == 3 and procs.count_lines(str(tmp_path / "none")) == 0


def test_stdout_lines_counts_what_the_process_wrote(tmp_path):
    out = tmp_path / "access.log"
    out.write_text('{"a":1}\n{"a":2}\n')
    assert procs.Process("x", "router", ["true"], 1, str(tmp_path / "x.log"), stdout_path=str(out)).stdout_lines() == 2
    assert procs.Process("y", "router", ["true"], 1, str(tmp_path / "y.log")).stdout_lines() is None


def test_each_profiled_proxy_is_counted_under_its_own_load():
    proxies = {p.name: p for p in paths.profiled_proxies({})}
    assert instructions.load_for(proxies["envoy-role"]) == (
        paths.STATIC_PORT, paths.TARGETS["static"]["url"], ())
    assert instructions.load_for(proxies["envoy-policy"])[2] == (f"Host: {paths.policy_host()}",)
    assert proxies["envoy-policy"].policy_default == "deny" and len(proxies["envoy-policy"].policy) == 100
    assert proxies["envoy-log-off"].access_log == "off"
    for name in ("envoy-tls", "envoy-tcp-tls"):
        assert instructions.load_for(proxies[name])[:2] == (paths.TLS_PORT, paths.TARGETS["tls"]["url"])
    assert proxies["envoy-tls"].mode == "tls" and proxies["envoy-tcp-tls"].mode == "tcp"


def _row(path, target, conns, rps, cpu):
    return {"target": target, "path": path, "conns": conns, "rps": rps, "x_direct": 0.5, "cpu_us_per_req": cpu,
            "added_p50_ms": 0.1}


def _results():
    summary = [_row("envoy-tproxy", "static", 64, 20000.0, 60.0), _row("envoy-log-off", "static", 64, 22000.0, 55.0),
               _row("envoy-policy", "static", 64, 15000.0, 80.0), _row("envoy-tcp", "tls", 64, 40000.0, 20.0),
               _row("envoy-tls", "tls", 64, 39000.0, 21.0), _row("envoy-tls", "tls-new", 16, 3000.0, 90.0)]
    profile = {name: {"label": name, "engine": "envoy", "mode": "http", "knobs": [], "per_request": n,
                      "target": target}
               for name, n, target in (("envoy-role", 170000, "static"), ("envoy-log-off", 160000, "static"),
                                       ("envoy-policy", 250000, "static"), ("envoy-tcp-tls", 17000, "tls"),
                                       ("envoy-tls", 17500, "tls"))}
    return {"summary": summary, "profile": profile, "proxies": {"envoy-role": {"access_log": "stdout"}}}


def test_feature_table_has_a_row_per_measured_configuration():
    text = "\n".join(readme.feature_costs(_results()))
    assert "| role defaults: access log on (`stdout`), no policy | static | 64 | 20000 | 0.50 | 60.0 | 170,000 |" in text
    assert "| `router_access_log: off` | static | 64 | 22000 | 0.50 | 55.0 | 160,000 |" in text
    assert "| static | 64 | 15000 | 0.50 | 80.0 | 250,000 |" in text
    assert "| TLS port, HTTPS with a new connection per request | tls-new | 16 | 3000 | 0.50 | 90.0 | – |" in text
    assert "L4 port, HTTPS with a new connection" not in text  # not measured: no row


def test_defaults_sentence_states_both_costs_and_the_difference():
    sentence = readme.defaults_sentence(_results())
    assert "cost 60.0 µs of Envoy's CPU and 170,000 instructions per HTTP request" in sentence
    assert "against 55.0 µs and 160,000 with `router_access_log: off`" in sentence
    assert "+5.0 µs (+9%) and +10,000 instructions (+6%)" in sentence
    assert "overlap" not in sentence


def test_defaults_sentence_says_when_the_cpu_difference_is_within_the_repeats_spread():
    results = _results()
    results["summary"][0].update(repeats=3, spread={"cpu_us_per_req": [54.0, 66.0], "rps": [1.0, 2.0]})
    results["summary"][1].update(repeats=3, spread={"cpu_us_per_req": [50.0, 57.0], "rps": [1.0, 2.0]})
    assert "ranges over the repeats overlap" in readme.defaults_sentence(results)
    results["summary"][1]["spread"]["cpu_us_per_req"] = [50.0, 53.0]
    assert "overlap" not in readme.defaults_sentence(results)


def test_figures_come_with_the_spread_of_their_repeats():
    runs = [{"rps": r, "p50_ms": 1.0, "p99_ms": 1.0, "machine_busy": 0.5, "errors": 0, "requests": 10,
             "cpu_us_per_req": c} for r, c in ((100.0, 60.0), (300.0, 58.0), (200.0, 64.1))]
    row = load.median_run(runs)
    assert row["spread"] == {"rps": [100.0, 300.0], "p50_ms": [1.0, 1.0], "cpu_us_per_req": [58.0, 64.1]}
    assert report.fmt_spread(row, "cpu_us_per_req", ".1f") == "60.0 (58.0–64.1)"
    assert report.fmt_spread(row, "rps", ".0f") == "200 (100–300)"
    assert report.fmt_spread({**row, "repeats": 1}, "rps", ".0f") == "200"
    assert report.fmt_spread({"cpu_us_per_req": None}, "cpu_us_per_req", ".1f") == "–"


def test_no_feature_table_for_a_run_without_those_paths():
    results = _results()
    results["summary"] = results["summary"][:1]
    assert readme.feature_costs(results) == []
    assert readme.defaults_sentence(results) is None


def test_profile_table_compares_only_the_static_load_with_haproxy():
    profiled = dict(_results()["profile"])
    profiled["haproxy-tcp"] = {"label": "HAProxy TCP", "engine": "haproxy", "mode": "tcp", "knobs": [],
                               "per_request": 4000, "target": "static"}
    profiled["envoy-tcp-tls"]["mode"] = "tcp"
    table = "\n".join(report.profile_markdown(profiled))
    assert "| envoy-tcp-tls | none | 17,000 | – |" in table
    assert "or the same over TLS where the row says so" in table


@pytest.mark.parametrize("target", paths.TLS_TARGETS)
def test_tls_targets_are_https_on_the_tls_port(target):
    spec = paths.TARGETS[target]
    assert spec["url"].startswith("https://") and spec["port"] == paths.TLS_PORT and spec["tls"]


def test_the_container_runtimes_share_is_reported_when_measured():
    results = _results()
    assert readme.carrier_sentence(results) is None
    results["summary"].append({**_row("envoy-product", "httpbin", 16, 900.0, 120.0), "carrier_cpu_us_per_req": 14.04})
    results["summary"].append({**_row("envoy-product", "httpbin", 1, 300.0, 150.0), "carrier_cpu_us_per_req": 30.0})
    results["log_carriers"] = ["containerd-shim", "dockerd"]
    sentence = readme.carrier_sentence(results)
    assert "(path b', httpbin, 16 connections) containerd-shim and dockerd spent a further 14.0 µs" in sentence
    assert "(Envoy itself 120.0 µs there)" in sentence
    assert sentence in "\n".join(readme.feature_costs(results))


def test_median_run_keeps_the_carriers_share_only_where_measured():
    runs = [{"rps": 1.0, "p50_ms": 1.0, "p99_ms": 1.0, "machine_busy": 0.5, "errors": 0, "requests": 10,
             "cpu_us_per_req": 5.0, "carrier_cpu_us_per_req": c} for c in (3.0, 1.0, 2.0)]
    assert load.median_run(runs)["carrier_cpu_us_per_req"] == 2.0
    for r in runs:
        del r["carrier_cpu_us_per_req"]
    assert "carrier_cpu_us_per_req" not in load.median_run(runs)


def test_the_data_path_starts_only_the_proxies_its_targets_need():
    _paths, targets, proxies = run.data_path_selection(run.parse_args([]))
    names = [p.name for p in proxies]
    assert {"envoy-log-off", "envoy-policy", "envoy-tls"} <= set(names) and set(paths.TLS_TARGETS) <= set(targets)
    _paths, targets, proxies = run.data_path_selection(run.parse_args(["--targets", "static"]))
    assert "envoy-tls" not in [p.name for p in proxies] and targets == ["static"]


def test_profiled_subset_is_checked():
    assert run.profile_selection(run.parse_args(["--profiled", "envoy-tls,envoy-role"]), "/w")[0][0].name == "envoy-role"
    with pytest.raises(SystemExit):
        run.parse_args(["--profiled", "envoy-nonesuch"])


def test_the_smoke_runs_every_path_once_within_its_minute():
    args = run.parse_args(["--smoke"])
    assert args.targets == ["static", "httpbin", "tls"] and args.quiet_budget == 0
    selected, targets, _proxies = run.data_path_selection(args)
    assert all(set(p.targets) & set(targets) for p in selected)
    assert run.parse_args([]).targets == list(paths.TARGETS)
    assert run.parse_args(["--smoke", "--targets", "tls-new"]).targets == ["tls-new"]
