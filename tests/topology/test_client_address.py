"""The client's own address kept to the server (issue 17, router_preserve_client_address).

With the option on, Envoy's upstream connections come from the client's address on the L7 port
(httpbin's /ip) and on an L4 port (client_address/peer_server.py on the web host names its peer),
the web server has its return route through the router and verify.yml proves it. Without the return
route the request fails visibly and verify.yml names the route. With the option off again the route
is gone and the server sees the router.
"""

import json
import pathlib
import subprocess
import sys

import pytest

from conftest import ADDR, assert_ok, holder, playbook, sh
from polling import wait_until

HERE = pathlib.Path(__file__).resolve().parent / "client_address"
L4_PORT = 8081
ON = json.dumps({"router_preserve_client_address": True, "router_intercept_l4_ports": [L4_PORT]})


def client(command):
    return sh("client", command, check=False)


def http_origin():
    out = client("curl -sS --max-time 10 http://%s/ip" % ADDR["web"])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["origin"]


def l4_peer():
    # A server-first protocol: the client only reads.
    return client("curl -sS --max-time 10 telnet://%s:%d </dev/null" % (ADDR["web"], L4_PORT)).stdout.strip()


def web_route():
    return sh("web", "ip -4 route show %s/32" % ADDR["client"]).stdout.strip()


@pytest.fixture(scope="module")
def peer_server(lab):
    server = subprocess.Popen(["nsenter", "-t", holder("web"), "-n", "--", sys.executable, str(HERE / "peer_server.py"),
                               lab["web"], str(L4_PORT)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def listening():
        return sh("web", "ss -Hltn 'sport = :%d'" % L4_PORT).stdout.strip()

    try:
        assert wait_until(listening, 20, 0.2), \
            "peer_server.py did not listen on %s:%d (test setup)" % (lab["web"], L4_PORT)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def preserving(peer_server):
    """The topology with the option on: site.yml and verify.yml pass, the second site.yml changes nothing."""
    assert_ok(playbook("site", "-e", ON))
    assert_ok(playbook("site", "-e", ON), changed=0)
    verify = playbook("verify", "-e", ON)
    assert_ok(verify, changed=0)
    return verify.stdout


def test_the_server_sees_the_client_on_l7_and_l4_ports(preserving):
    assert http_origin() == ADDR["client"]
    assert l4_peer() == ADDR["client"]
    assert "the web server saw the request from %s" % ADDR["client"] in preserving


def test_the_web_server_routes_the_replies_through_the_router(preserving):
    assert web_route() == "%s via %s dev eth0" % (ADDR["client"], ADDR["router"])
    # The router's own requests to the web server are not rewritten.
    out = sh("router", "curl -sS --max-time 10 http://%s/ip" % ADDR["web"])
    assert json.loads(out.stdout)["origin"] == ADDR["router"]


def test_without_the_return_route_the_request_fails_and_verify_names_the_route(preserving):
    sh("web", "ip route del %s/32" % ADDR["client"])
    try:
        out = client("curl -sS -o /dev/null -w '%%{http_code}' --max-time 15 http://%s/get" % ADDR["web"])
        assert out.stdout != "200", out
        verify = playbook("verify", "-e", ON)
        assert verify.returncode != 0
        assert "Hop 'web server → router (return route)' failed" in verify.stdout, verify.stdout[-3000:]
        assert "not via the router %s" % ADDR["router"] in verify.stdout
    finally:
        # What boot runs: the web server's own state script puts the route back.
        sh("web", "/usr/local/sbin/tproxy-envoy-webserver apply")
    assert web_route() and http_origin() == ADDR["client"]


def test_with_the_option_off_again_the_route_is_gone_and_the_server_sees_the_router(preserving):
    assert_ok(playbook("site"))
    assert web_route() == ""
    assert sh("web", "ls /usr/local/sbin/tproxy-envoy-webserver /etc/systemd/system/tproxy-envoy-webserver.service",
              check=False).stdout == ""
    assert http_origin() == ADDR["router"]
    # Port 8081 is no longer intercepted: the router forwards it as it is, and the server sees the client.
    assert l4_peer() == ADDR["client"]
