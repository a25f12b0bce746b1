"""The roles' `validate` entry points: bad input is refused naming the variable, good input
passes (also numbers given as `-e name=value` strings), and no host is touched.

Every host runs with a Python interpreter that does not exist, so any task that reached a
host (a module, a command) would fail: passing proves `validate` runs on the controller only.
"""

import json

import pytest
from ansible_collections.tproxy.envoy.tests.unit.roles.role_playbook import ROLES, VALIDATE_TASK, run_play

PLAY = """
- name: Validate each host's input as site.yml does
  hosts: all
  gather_facts: false
  vars:
    site_roles: %s
  tasks:%s""" % (json.dumps(ROLES), VALIDATE_TASK % "")

BAD = [
    ("routers", "router_proxy_port", 70000),
    ("routers", "router_proxy_port", 0),
    ("routers", "router_proxy_port", "not-a-port"),
    ("routers", "router_envoy_admin_port", 4999),
    ("routers", "router_intercept_ports", []),
    ("routers", "router_intercept_ports", [0]),
    ("routers", "router_intercept_ports", [80, 80]),
    ("routers", "router_intercept_ports", [80, "80"]),
    ("routers", "router_intercept_l4_ports", [80]),
    ("routers", "router_intercept_l4_ports", [70000]),
    ("routers", "router_tproxy_mark", 0),
    ("routers", "router_tproxy_mark", 4294967296),
    ("routers", "router_route_table", 0),
    ("routers", "router_route_table", 254),
    ("routers", "router_envoy_runtime", "podman"),
    ("routers", "router_envoy_log_level", "loud"),
    ("routers", "router_envoy_admin_address", "localhost"),
    ("routers", "router_envoy_admin_address", "0.0.0.0"),
    ("routers", "router_envoy_admin_address", "192.0.2.100"),
    ("routers", "router_envoy_buffer_limit_bytes", 512),
    ("routers", "router_envoy_concurrency", -1),
    ("routers", "router_intercept_sources", ["192.0.2.1/24"]),
    ("routers", "router_envoy_network_mode", "bridge"),
    ("routers", "router_envoy_user", "envoy"),
    ("routers", "router_envoy_pids_limit", 8),
    ("routers", "router_access_log_flush_seconds", 0),
    ("routers", "router_client_connection_limit", -1),
    ("routers", "router_envoy_memory_limit", "lots"),
    ("routers", "router_intercept_tls_ports", [80]),
    ("routers", "router_intercept_tls_ports", [0]),
    ("routers", "router_access_log", "relative/access.log"),
    ("routers", "router_access_log", "/access.log"),
    ("routers", "router_access_log", "/var/log/../etc/passwd"),
    ("routers", "router_access_log", "/etc/access.log"),
    ("routers", "router_access_log", "/etc/envoy/access.log"),
    ("routers", "router_access_log", "/var/log/access.log"),
    ("routers", "router_access_log", "/usr/lib/tproxy/access.log"),
    ("routers", "router_metrics_address", "router"),
    ("routers", "router_metrics_port", 19000),
    ("routers", "router_policy_default", "block"),
    ("routers", "router_policy_mode", "audit"),
    ("routers", "router_policy", [{"action": "block"}]),
    ("routers", "router_policy", [{"action": "deny", "networks": ["192.0.2.1/24"]}]),
    ("routers", "router_policy", [{"action": "deny", "hosts": ["*.*.example.com"]}]),
    ("routers", "router_policy", [{"action": "deny", "ports": [70000]}]),
    ("routers", "router_policy", [{"action": "deny", "ports": [8443]}]),
    ("routers", "router_policy", [{"action": "deny", "protocol": "gre"}]),
    ("routers", "router_policy", [{"action": "deny", "hosts": ["192.0.2.180"]}]),
    ("routers", "router_policy", [{"action": "deny", "name": "refused"}]),
    ("webservers", "webserver_port", 99999),
    ("webservers", "webserver_port", "http"),
    ("webservers", "webserver_bind_address", "0.0.0.0/0"),
    ("clients", "client_routes", []),
    ("clients", "client_routes", [{"dest": "not-an-address", "via": "192.0.2.100"}]),
    ("clients", "client_routes", [{"dest": "192.0.2.180/32", "via": "router"}]),
]


def run(tmp_path, inventory, *extra):
    report = run_play(tmp_path, inventory, PLAY, *extra)
    failures = {}
    for task in report["plays"][0]["tasks"]:
        for host, result in task["hosts"].items():
            if result.get("failed") or result.get("unreachable"):
                failures.setdefault(host, []).append(json.dumps(result))
    for host, stats in report["stats"].items():
        if (stats["failures"] or stats["unreachable"]) and host not in failures:
            failures[host] = ["failed without a task result"]
    return failures, report


def inventory(cases):
    """One host per case, in its role's group, plus one host per role with the defaults."""
    hosts = {group: {} for group in ROLES}
    number = 10
    for group in ROLES:
        hosts[group]["good_" + ROLES[group]] = {}
    for index, (group, name, value) in enumerate(cases):
        hosts[group]["bad%d" % index] = {name: value}
    for group in hosts.values():
        for host_vars in group.values():
            number += 1
            # Local connection, missing interpreter: any module run on a host fails.
            host_vars.update(ansible_host="192.0.2.%d" % number, ansible_connection="local",
                             ansible_python_interpreter="/nonexistent/python")
    return {group: {"hosts": members} for group, members in hosts.items()}


def test_bad_input_is_refused_naming_the_variable_and_good_input_passes_without_host_access(tmp_path):
    failures, _report = run(tmp_path, inventory(BAD))
    assert sorted(failures) == sorted("bad%d" % index for index in range(len(BAD))), failures.keys()
    for index, (_group, name, value) in enumerate(BAD):
        assert name in "".join(failures["bad%d" % index]), (name, value, failures["bad%d" % index])


@pytest.mark.parametrize("extra,refused", [
    (["-e", "router_proxy_port=5000", "-e", "router_envoy_admin_port=19001", "-e", "router_tproxy_mark=2",
      "-e", "router_route_table=101", "-e", "router_envoy_buffer_limit_bytes=65536", "-e", "webserver_port=8080"], None),
    (["-e", json.dumps({"router_intercept_tls_ports": [443], "router_access_log": "/var/log/tproxy-envoy/access.log",
                        "router_metrics_address": "192.0.2.100", "router_policy_default": "deny",
                        "router_policy_mode": "monitor", "router_policy": [
                            {"action": "allow", "name": "web", "hosts": ["www.example.com", "*.example.net"]},
                            {"action": "deny", "networks": ["198.51.100.0/24"], "ports": ["443"]}]})], None),
    (["-e", "router_proxy_port=70000"], "router_proxy_port"),
    (["-e", "router_route_table=255"], "router_route_table"),
], ids=["numbers-as-strings-pass", "policy-tls-log-metrics-pass", "port-string-out-of-range", "reserved-table-string"])
def test_numbers_given_as_key_value_strings_are_checked_as_numbers(tmp_path, extra, refused):
    failures, _report = run(tmp_path, inventory([]), *extra)
    if refused is None:
        assert failures == {}
    else:
        assert list(failures) == ["good_router"] and refused in "".join(failures["good_router"])
