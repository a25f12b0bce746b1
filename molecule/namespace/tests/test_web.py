"""The web server: httpbin on the host's network, reached from the router."""

from conftest import docker_inspect

testinfra_hosts = ["web"]


def test_httpbin_runs_on_the_host_network(host):
    info = docker_inspect(host, "tproxy-httpbin")
    assert info["State"]["Running"] is True
    assert info["HostConfig"]["NetworkMode"] == "host"


def test_httpbin_saw_requests_arrive_from_the_router(host, lab):
    logs = host.check_output("docker logs tproxy-httpbin 2>&1")
    assert any(line.startswith(lab["router"] + " ") and "/headers" in line for line in logs.splitlines()), logs[-2000:]
