"""The client container: its route, a request that really passes the router's TPROXY rule
into Envoy and on to httpbin, and what must NOT be intercepted."""

import re
import time

import testinfra

testinfra_hosts = ["client"]


def tproxy_rule_packets(router):
    """Packets the port-80 TPROXY rule has matched so far (its counter in the router)."""
    out = router.check_output("iptables -t mangle -L TPROXY-ENVOY -v -x -n")
    counts = [int(line.split()[0]) for line in out.splitlines() if re.search(r"\bTPROXY\b.*dpt:80\b", line)]
    assert len(counts) == 1, out
    return counts[0]


def test_route_to_web_goes_through_the_router(host, addr):
    assert "via %s " % addr["router"] in host.check_output("ip -4 route get %s" % addr["web"])


def test_request_passes_the_tproxy_rule_into_envoy_and_on_to_httpbin(host, addr):
    router = testinfra.get_host("docker://router")
    before = tproxy_rule_packets(router)
    out = host.check_output("curl -sS -i --max-time 10 http://%s/headers" % addr["web"])
    head, _sep, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert "server: envoy" in head.lower()
    # What Envoy saw: the web server's address as its local end (destination kept, no NAT),
    # this client as the peer, and the web server as the upstream it connected to.
    assert '"X-Request-Downstream-Local": "%s:80"' % addr["web"] in body
    assert '"X-Request-Downstream-Remote": "%s:' % addr["client"] in body
    assert '"X-Request-Upstream-Remote": "%s:80"' % addr["web"] in body
    assert '"X-Request-Start-Time": "' in body
    assert tproxy_rule_packets(router) > before


def test_direct_connections_to_the_proxy_and_admin_ports_are_refused(host, addr):
    for port in (4999, 19000, 80):
        result = host.run("curl -sS --max-time 5 http://%s:%d/" % (addr["router"], port))
        assert result.rc == 7, (port, result.rc, result.stderr)  # 7 = connection refused


def test_ports_not_intercepted_are_still_forwarded(host, addr):
    # A listener on another port of the web host, reached through the router, answers without Envoy.
    web = testinfra.get_host("docker://web")
    web.check_output("sh -c 'echo $$ > /tmp/http-8080.pid; exec python3 -m http.server 8080 --bind %s' "
                     ">/dev/null 2>&1 &" % addr["web"])
    try:
        for _attempt in range(50):
            if web.run("ss -Hltn 'sport = :8080'").stdout.strip():
                break
            time.sleep(0.1)
        result = host.run("curl -sS -i --max-time 10 http://%s:8080/" % addr["web"])
        assert result.rc == 0, result.stderr
        assert result.stdout.startswith("HTTP/1.0 200")
        assert "server: envoy" not in result.stdout.lower()
    finally:
        web.run("kill $(cat /tmp/http-8080.pid) && rm -f /tmp/http-8080.pid")
