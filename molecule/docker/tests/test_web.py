"""The web container: httpbin runs on the controller's engine inside the web host's network."""

import os

from conftest import engine, inspect

testinfra_hosts = ["web"]


def test_httpbin_is_in_the_web_hosts_network_namespace():
    web, httpbin = inspect("web"), inspect("web-httpbin")
    assert httpbin["State"]["Running"] is True
    assert httpbin["HostConfig"]["NetworkMode"] == "container:" + web["Id"]
    namespaces = {os.stat("/proc/%d/ns/net" % c["State"]["Pid"]).st_ino for c in (web, httpbin)}
    assert len(namespaces) == 1


def test_httpbin_answers_on_the_web_hosts_address(host, addr):
    out = host.check_output("curl -sS -i --max-time 5 http://%s/get" % addr["web"])
    assert out.startswith("HTTP/1.1 200")
    assert "server: envoy" not in out.lower()  # asked locally: no router in between


def test_httpbin_saw_the_clients_requests_arrive_from_the_router(addr):
    result = engine("logs", "web-httpbin")
    logs = result.stdout + result.stderr
    assert any(line.startswith(addr["router"] + " ") and "/headers" in line for line in logs.splitlines()), logs[-2000:]
