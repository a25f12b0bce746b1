"""The client: its route, a request through Envoy, and what must NOT work."""

import subprocess
import time

from conftest import in_netns

testinfra_hosts = ["client"]


def test_route_to_web_goes_through_the_router(host, lab):
    assert "via %s " % lab["router"] in host.check_output("ip -4 route get %s" % lab["web"])


def test_request_is_served_through_envoy_with_its_headers(host, lab):
    out = host.check_output("curl -sS -i --max-time 10 http://%s/headers" % lab["web"])
    head, _sep, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert "server: envoy" in head.lower()
    assert '"X-Request-Downstream-Local": "%s:80"' % lab["web"] in body
    assert '"X-Request-Downstream-Remote": "%s:' % lab["client"] in body
    assert '"X-Request-Upstream-Remote": "%s:80"' % lab["web"] in body
    assert '"X-Request-Start-Time": "' in body


def test_direct_connections_to_the_proxy_and_admin_ports_are_refused(host, lab):
    for port in (4999, 19000, 80):
        result = host.run("curl -sS --max-time 5 http://%s:%d/" % (lab["router"], port))
        assert result.rc == 7, (port, result.rc, result.stderr)  # 7 = connection refused


def test_ports_not_intercepted_are_still_forwarded(lab):
    # A listener on another port of the web host, reached from the client through
    # the router, must answer without Envoy: the router forwards what it does not
    # intercept even though Docker set its FORWARD policy to DROP.
    server = subprocess.Popen(["ip", "netns", "exec", "tproxy-web", "python3", "-m", "http.server", "8080",
                               "--bind", lab["web"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(50):
            if in_netns("web", "ss", "-Hltn", "sport = :8080").stdout.strip():
                break
            time.sleep(0.1)
        result = in_netns("client", "curl", "-sS", "-i", "--max-time", "10", "http://%s:8080/" % lab["web"], check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("HTTP/1.0 200")
        assert "server: envoy" not in result.stdout.lower()
    finally:
        server.terminate()
        server.wait(timeout=10)
