"""Checks of a converged topology, shared by the molecule scenarios (namespace, docker).

Each takes testinfra hosts and the topology's addresses ({"client", "router", "web"}), so
the two scenarios prove the same things and only say how their hosts are reached.
"""

import re
import time


def prerouting_jumps_once_into_the_own_chain(router):
    mangle = router.check_output("iptables-save -t mangle")
    jumps = [line for line in mangle.splitlines() if line.startswith("-A PREROUTING") and "TPROXY-ENVOY" in line]
    assert jumps == ['-A PREROUTING -m comment --comment "tproxy.envoy" -j TPROXY-ENVOY']


def port_80_goes_to_envoy_on_loopback_with_a_masked_mark(router):
    mangle = router.check_output("iptables-save -t mangle")
    assert re.search(r"^-A TPROXY-ENVOY -p tcp -m tcp --dport 80 .*-j TPROXY --on-port 4999 "
                     r"--on-ip 127\.0\.0\.1 --tproxy-mark 0x1/0x1$", mangle, re.M), mangle
    assert re.search(r"^-A TPROXY-ENVOY-DIVERT .*-j MARK --set-xmark 0x1/0x1$", mangle, re.M), mangle


def marked_packets_are_delivered_locally(router):
    assert "fwmark 0x1/0x1 lookup 100" in router.check_output("ip rule list")
    assert router.check_output("ip route show table 100").strip().startswith("local default dev lo")


def route_to_web_goes_through_the_router(client, addr):
    assert "via %s " % addr["router"] in client.check_output("ip -4 route get %s" % addr["web"])


def request_is_served_through_envoy_with_its_headers(client, addr):
    out = client.check_output("curl -sS -i --max-time 10 http://%s/headers" % addr["web"])
    head, _sep, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert "server: envoy" in head.lower()
    # What Envoy saw: the web server as its local end (destination kept, no NAT), the client
    # as the peer, and the web server as the upstream it connected to.
    assert '"X-Request-Downstream-Local": "%s:80"' % addr["web"] in body
    assert '"X-Request-Downstream-Remote": "%s:' % addr["client"] in body
    assert '"X-Request-Upstream-Remote": "%s:80"' % addr["web"] in body
    assert '"X-Request-Start-Time": "' in body
    # Envoy stays out of the request: no bookkeeping headers reach the web server.
    assert '"X-Request-Id"' not in body and '"X-Envoy-' not in body


def direct_connections_to_the_router_are_refused(client, addr):
    for port in (4999, 19000, 80):
        result = client.run("curl -sS --max-time 5 http://%s:%d/" % (addr["router"], port))
        assert result.rc == 7, (port, result.rc, result.stderr)  # 7 = connection refused


def ports_not_intercepted_are_still_forwarded(client, web, addr):
    """A listener on another port of the web host answers through the router, without Envoy."""
    # setsid and no terminal: the server must outlive the command that starts it, whatever the
    # connection does with that command's session when it returns.
    web.check_output("setsid sh -c 'echo $$ > /tmp/http-8080.pid; exec python3 -m http.server 8080 --bind %s' "
                     "</dev/null >/dev/null 2>&1 &" % addr["web"])
    try:
        listening = False
        for _attempt in range(100):  # bounded: about 20 s at most
            listening = bool(web.run("ss -Hltn 'sport = :8080'").stdout.strip())
            if listening:
                break
            time.sleep(0.2)
        assert listening, "python3 -m http.server did not listen on %s:8080 (test setup)" % addr["web"]
        result = client.run("curl -sS -i --max-time 10 http://%s:8080/" % addr["web"])
        assert result.rc == 0, result.stderr
        assert result.stdout.startswith("HTTP/1.0 200")
        assert "server: envoy" not in result.stdout.lower()
    finally:
        web.run("kill $(cat /tmp/http-8080.pid) && rm -f /tmp/http-8080.pid")
