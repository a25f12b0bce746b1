# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router's plan (plugins/plugin_utils/router_model.py): settings in, everything the role writes out."""

from __future__ import annotations

import functools
import pathlib

import pytest
import yaml

from ansible_collections.tproxy.envoy.plugins.plugin_utils import router_model as model

REPO = pathlib.Path(__file__).resolve().parents[4]


@functools.lru_cache(maxsize=None)
def _defaults_text():
    return (REPO / "roles/router/defaults/main.yml").read_text(encoding="utf-8")


def defaults(**changes):
    """The role's defaults (defaults/main.yml), the inventory-computed ones given as a lab router has them."""
    settings = yaml.load(_defaults_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    settings.update(router_ipv6=False, router_forward_sources=["192.0.2.10/32"], router_envoy_engine_host="router")
    settings.update(changes)
    return settings


def plan(probe=None, **changes):
    result = model.router_plan(defaults(**changes), "router", probe)
    assert result["problems"] == [], result["problems"]
    return result


BAD = [
    ("router_proxy_port", 70000), ("router_proxy_port", "not-a-port"), ("router_envoy_admin_port", 4999),
    ("router_intercept_ports", []), ("router_intercept_ports", [80, "80"]), ("router_intercept_l4_ports", [80]),
    ("router_intercept_tls_ports", [0]), ("router_access_log", "/var/log/../etc/passwd"), ("router_access_log", "/access.log"),
    ("router_metrics_address", "router"), ("router_metrics_port", 19000), ("router_policy", [{"action": "block"}]),
    ("router_policy", [{"action": "deny", "ports": [8443]}]), ("router_tproxy_mark", 0), ("router_route_table", "254"),
    ("router_envoy_concurrency", -1), ("router_envoy_max_downstream_connections", 0),
    ("router_envoy_max_request_headers_kb", 8193), ("router_envoy_upgrade_types", ["web socket"]),
    ("router_envoy_buffer_limit_bytes", 512), ("router_proxy_address", "::1"), ("router_envoy_admin_address", "localhost"),
    ("router_intercept_sources", ["192.0.2.1/24"]), ("router_forward_sources", ["2001:db8:0::/64"]),
    ("router_envoy_network_mode", "bridge"), ("router_envoy_user", "envoy"),
    ("router_envoy_admin_address", "0.0.0.0"), ("router_envoy_admin_address", "192.0.2.100"),
    ("router_access_log", "/etc/envoy/access.log"), ("router_access_log", "/var/log/access.log"),
    ("router_access_log_flush_seconds", 0), ("router_client_connection_limit", -1),
    ("router_envoy_pids_limit", 8), ("router_envoy_memory_limit", "lots"),
]


@pytest.mark.parametrize("name,value", BAD, ids=["%s=%r" % case for case in BAD])
def test_a_wrong_setting_is_one_problem_naming_its_variable_and_nothing_is_planned(name, value):
    result = model.router_plan(defaults(**{name: value}), "router")
    assert list(result) == ["problems"]
    assert name in result["problems"][0], result["problems"]


def test_the_upstream_mark_must_share_no_bit_with_the_interception_mark_only_when_in_use():
    assert plan(router_preserve_client_address_mark=1)["problems"] == []
    result = model.router_plan(defaults(router_preserve_client_address=True, router_preserve_client_address_mark=3), "router")
    assert ["router_preserve_client_address_mark" in p for p in result["problems"]] == [True]


def test_numbers_given_as_strings_are_planned_as_numbers():
    result = plan(router_proxy_port="5000", router_intercept_ports=["80", 8080], router_tproxy_mark="2", router_route_table="101")
    assert result["ports"]["proxy"] == 5000 and result["ports"]["http"] == [80, 8080]
    assert result["netstate"]["netstate_ip_rules"] == ["fwmark 0x2/0x2 lookup 101"]
    assert result["envoy"]["listeners"][0]["address"]["socket_address"]["port_value"] == 5000


def test_the_intercepted_ports_are_written_once_by_mode_and_their_union_feeds_every_rule():
    result = plan(router_intercept_ports=[80, 8080], router_intercept_l4_ports=[5432], router_intercept_tls_ports=[443])
    assert result["ports"]["all"] == [80, 8080, 5432, 443]
    rules = result["netstate"]["netstate_iptables_rules"]
    assert [p for p in result["ports"]["all"] if "--dport %d " % p in rules] == [80, 8080, 5432, 443]
    chains = [c["name"] for c in result["envoy"]["listeners"][0]["filter_chains"]]
    assert chains == ["http-80", "http-8080", "l4-5432-default", "tls-443-default"]
    nft = plan(router_firewall_backend="nftables", router_intercept_ports=[80, 8080], router_intercept_l4_ports=[5432])
    assert "tcp dport { 80, 8080, 5432 } drop" in nft["netstate"]["netstate_nftables_rules"]


def test_the_backend_and_families_are_decided_once_from_what_the_host_has():
    probe = {"tools": {"iptables-restore": "", "ip6tables-restore": "", "nft": "/usr/sbin/nft"}, "links": [],
             "tproxy_kernel": {"supported": True, "loadable": [], "backend": "nftables", "families": ["ipv4", "ipv6"]}}
    result = plan(probe, router_ipv6=True)
    assert result["host"]["backend"] == "nftables" and result["host"]["families"] == ["ipv4", "ipv6"]
    # The probe already checked this backend and both families, nothing is loadable: no second round trip.
    assert result["host"]["kernel"] == {"backend": "nftables", "families": ["ipv4", "ipv6"], "load": False}
    assert result["netstate"]["netstate_iptables"] == [] and result["netstate"]["netstate_nftables"] != []
    # A probe of IPv4 only does not answer for a dual-stack router.
    probe["tproxy_kernel"]["families"] = ["ipv4"]
    assert plan(probe, router_ipv6=True)["host"]["kernel"]["load"] is True
    probe["tproxy_kernel"].update(families=["ipv4", "ipv6"], loadable=["nft_tproxy"])
    assert plan(probe, router_ipv6=True)["host"]["kernel"]["load"] is True
    # Without a probe (render) iptables is assumed.
    assert plan()["host"]["backend"] == "iptables"


def test_kernel_settings_cover_the_routers_own_links_only():
    result = plan({"links": ["eth0", "lo", "docker0", "veth12", "br-x", "eth1"]}, router_ipv6=True)
    assert "net.ipv4.conf.eth1.send_redirects" in result["sysctls"]
    assert not [k for k in result["sysctls"] if ".docker0." in k or ".lo." in k or ".veth12." in k]
    assert result["sysctls"]["net.ipv6.conf.eth0.accept_ra"] == 2
    assert result["sysctls_base"] == {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 2,
                                      "net.ipv6.conf.all.forwarding": 1}


def test_the_static_configuration_is_the_bootstrap_with_the_watched_resources():
    result = plan(router_metrics_address="192.0.2.100", router_policy=[{"action": "deny", "ports": [443]}],
                  router_intercept_tls_ports=[443])
    envoy = result["envoy"]
    static = yaml.safe_load(envoy["static_yaml"])
    bootstrap = yaml.safe_load(envoy["bootstrap_yaml"])
    assert {k: v for k, v in static.items() if k != "static_resources"} == \
        {k: v for k, v in bootstrap.items() if k not in ("dynamic_resources", "static_resources")}
    own = bootstrap.get("static_resources", {})
    for name, kind, key in (("lds.yaml", "listeners", "lds"), ("cds.yaml", "clusters", "cds")):
        watched = yaml.safe_load(envoy["watched"][name])
        assert watched["version_info"] == envoy["versions"][key]
        assert watched["resources"] == envoy[kind]
        assert static["static_resources"][kind] == [
            {k: v for k, v in r.items() if k != "@type"} for r in watched["resources"]] + own.get(kind, [])


def test_a_watched_files_version_changes_with_its_resources_only():
    first, second = plan(), plan(router_envoy_upgrade_types=["websocket", "h2c"])
    assert first["envoy"]["versions"]["cds"] == second["envoy"]["versions"]["cds"]
    assert first["envoy"]["versions"]["lds"] != second["envoy"]["versions"]["lds"]


def _clusters_named(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "cluster" and isinstance(value, str):
                yield value
            else:
                yield from _clusters_named(value)
    elif isinstance(node, list):
        for value in node:
            yield from _clusters_named(value)


@pytest.mark.parametrize("changes", [{}, {"router_metrics_address": "192.0.2.100"},
                                     {"router_intercept_l4_ports": [5432], "router_policy": [{"action": "deny", "ports": [5432]}]}],
                         ids=["defaults", "metrics", "l4-deny"])
def test_every_cluster_a_listener_names_is_one_envoy_has_before_the_listener_arrives(changes):
    """Envoy applies lds.yaml and cds.yaml separately: a listener may only name a cluster that
    exists whatever order they come in, so every cluster a listener names that is not in every
    plan's cds.yaml lives in the bootstrap."""
    result = plan(**changes)
    always = {c["name"] for c in plan()["envoy"]["clusters"]}
    static = {c["name"] for c in result["envoy"]["bootstrap"].get("static_resources", {}).get("clusters", [])}
    assert set(_clusters_named(result["envoy"]["listeners"])) <= always | static


# An other value for every setting the plan reads, to see what each one changes.
OTHER = {
    "router_proxy_port": 5000, "router_proxy_address": "127.0.0.2", "router_intercept_ports": [80, 8080],
    "router_intercept_l4_ports": [5432], "router_intercept_tls_ports": [443], "router_intercept_sources": ["192.0.2.0/24"],
    "router_ipv6": True, "router_firewall_backend": "nftables", "router_tproxy_mark": 2, "router_route_table": 101,
    "router_preserve_client_address": True, "router_preserve_client_address_mark": 4,
    "router_forward_sources": ["198.51.100.0/24"], "router_rp_filter": 0, "router_send_redirects": True,
    "router_access_log": "stdout", "router_policy": [{"action": "deny", "ports": [80]}],
    "router_policy_default": "deny", "router_policy_mode": "monitor", "router_metrics_address": "192.0.2.100",
    "router_metrics_port": 9103, "router_envoy_log_level": "debug", "router_envoy_admin_address": "127.0.0.2",
    "router_envoy_admin_port": 19001, "router_envoy_concurrency": 2, "router_envoy_max_downstream_connections": 10,
    "router_envoy_buffer_limit_bytes": 65536, "router_envoy_max_request_headers_kb": 60,
    "router_envoy_upgrade_types": ["h2c"], "router_envoy_evidence_headers": True, "router_envoy_dynamic_stats": True,
    "router_envoy_drain_seconds": 5, "router_access_log_flush_seconds": 5, "router_client_connection_limit": 0,
    "router_envoy_pids_limit": 256, "router_envoy_memory_limit": "512m",
    "router_envoy_container_name": "other", "router_envoy_config_dir": "/etc/other",
}
# Settings whose own effect shows only together with another one.
TOGETHER = {"router_preserve_client_address_mark": {"router_preserve_client_address": True},
            "router_metrics_port": {"router_metrics_address": "192.0.2.100"},
            "router_policy_mode": {"router_policy": [{"action": "deny", "ports": [80]}]},
            "router_envoy_container_name": {"router_access_log": "/var/log/tproxy-envoy/access.log"}}


def _effects(before, after):
    envoy_b, envoy_a = before["envoy"], after["envoy"]
    parts = {
        "watched": envoy_b["watched"] != envoy_a["watched"],
        "start": (envoy_b["bootstrap_yaml"], envoy_b["args"], envoy_b["mounts"], envoy_b["container"])
        != (envoy_a["bootstrap_yaml"], envoy_a["args"], envoy_a["mounts"], envoy_a["container"]),
        "host": (before["netstate"], before["sysctls"], before["host"]) != (after["netstate"], after["sysctls"], after["host"]),
        "files": envoy_b["logrotate"] != envoy_a["logrotate"],
    }
    return tuple(sorted(k for k, v in parts.items() if v))


@pytest.mark.parametrize("name", sorted(OTHER))
def test_the_table_of_effects_says_what_each_setting_changes(name):
    """EFFECTS tells which of Envoy's files (watched: no restart; start: a new process), host
    state and files each setting changes: the role applies each kind its own way."""
    base = TOGETHER.get(name, {})
    assert tuple(sorted(model.EFFECTS[name])) == _effects(plan(**base), plan(**dict(base, **{name: OTHER[name]})))


def test_every_setting_the_plan_reads_beyond_its_checks_has_its_effects_written_down():
    spec = yaml.safe_load((REPO / "roles/router/meta/argument_specs.yml").read_text(encoding="utf-8"))
    source = (REPO / "plugins/plugin_utils/router_model.py").read_text(encoding="utf-8")
    planning = source[source.index("# --- host"):]
    read = {name for name in spec["argument_specs"]["main"]["options"] if '"%s"' % name in planning}
    assert read == set(model.EFFECTS) == set(OTHER)


def test_the_managed_header_heads_the_rule_files_and_the_bootstrap_only():
    header = "#\n# Ansible managed\n#\n"
    result = model.router_plan(defaults(router_ipv6=True), "router", None, header)
    netstate = result["netstate"]
    assert netstate["netstate_iptables_rules"].startswith(header + "# iptables-restore")
    assert netstate["netstate_ip6tables_rules"].startswith(header + "# ip6tables-restore")
    assert netstate["netstate_nftables_rules"] == ""
    assert result["envoy"]["bootstrap_yaml"].startswith(header + "# Envoy v3 bootstrap")
    assert yaml.safe_load(result["envoy"]["bootstrap_yaml"]) == result["envoy"]["bootstrap"]
    assert not result["envoy"]["watched"]["lds.yaml"].startswith(header)


def _hcm(result):
    return result["envoy"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def test_the_access_log_names_the_sockets_peer_and_logs_refused_requests_only_under_a_policy():
    plain = _hcm(plan(router_access_log_flush_seconds=7))
    assert len(plain["access_log"]) == 1 and "filter" not in plain["access_log"][0]
    assert plain["access_log_options"] == {"access_log_flush_interval": "7s"}
    fields = plain["access_log"][0]["typed_config"]["log_format"]["json_format"]
    assert fields["client_address"] == "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%" and fields["path"] == "%REQ(:PATH):2048%"
    policed = _hcm(plan(router_policy=[{"action": "deny", "ports": [80]}]))["access_log"]
    # The second logger takes what the RBAC filter never saw; each request goes to exactly one of them.
    assert [entry["filter"]["metadata_filter"]["match_if_key_not_found"] for entry in policed] == [False, True]
    refused = policed[1]["typed_config"]["log_format"]["json_format"]
    assert (refused["policy_decision"], refused["policy_rule"]) == ("denied", "refused")
    assert "access_log" not in _hcm(plan(router_access_log="off")) and "access_log_options" not in _hcm(plan(router_access_log="off"))


def test_the_connection_limit_is_one_rule_per_family_and_none_at_zero():
    rules = plan(router_ipv6=True)["netstate"]
    assert "--connlimit-above 1000 --connlimit-mask 32 " in rules["netstate_iptables_rules"]
    assert "--connlimit-above 1000 --connlimit-mask 128 " in rules["netstate_ip6tables_rules"]
    assert "connlimit" not in plan(router_client_connection_limit=0)["netstate"]["netstate_iptables_rules"]
    nft = plan(router_ipv6=True, router_firewall_backend="nftables")["netstate"]["netstate_nftables_rules"]
    assert "add @clients_ipv4 { ip saddr ct count over 1000 } drop" in nft
    assert "add @clients_ipv6 { ip6 saddr ct count over 1000 } drop" in nft


def test_forwarded_traffic_meets_the_policy_in_its_own_chain_only_when_a_rule_or_the_default_can_decide_it():
    assert model.POLICY_CHAIN not in plan()["netstate"]["netstate_iptables_rules"]
    result = plan(router_policy=[{"action": "allow", "protocol": "udp", "ports": [53], "networks": ["192.0.2.53/32"]}],
                  router_policy_default="deny")
    chains = [c["chain"] for c in result["netstate"]["netstate_iptables"]]
    assert model.POLICY_CHAIN in chains
    rules = result["netstate"]["netstate_iptables_rules"]
    assert "-A %s -s 192.0.2.10/32 " % model.FORWARD_CHAIN in rules and "-j %s" % model.POLICY_CHAIN in rules
    assert "nothing else is forwarded\" -j DROP" in rules


def test_the_admin_address_must_be_loopback_and_the_metrics_route_the_whole_path():
    assert plan(router_envoy_admin_address="127.0.0.2")["problems"] == []
    metrics = plan(router_metrics_address="192.0.2.100")["envoy"]["listeners"][1]
    route = metrics["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]
    assert {"name": ":path", "string_match": {"exact": "/stats/prometheus"}} in route["match"]["headers"]
