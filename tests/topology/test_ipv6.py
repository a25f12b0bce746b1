"""IPv6 beside IPv4 on the dual-stack lab: interception (iptables backend here, nftables in
test_nftables.py), Envoy's ::1 address, the router's IPv6 default route from router advertisements, and router_ipv6: false leaving IPv6 alone.

The bytes of each transparency case in IPv6 are compared in test_transparency.py; verify.yml
(run in test_hardening.py and test_nftables.py) asks through the router in both families.
"""

import json
import subprocess
import sys

import pytest

from conftest import ADDR, ADDR6, assert_ipv6_goes_through_envoy, assert_ok, curl6, holder, playbook, sh
from polling import wait_until

pytestmark = pytest.mark.skipif(not ADDR6, reason="the lab inventory gives no host an IPv6 address (IPv4-only lab)")

# A router advertisement (RFC 4861 4.2) from the web host to all nodes on eth0: router lifetime 1800 s,
# no options. Sent with hop limit 255, as a receiver requires; the kernel fills in the checksum.
ADVERTISE = r"""
import socket, struct
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
sock.sendto(struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0), ("ff02::1", 0, 0, socket.if_nametoindex("eth0")))
"""


def test_ipv6_connections_go_through_envoy_on_its_ipv6_address(lab):
    # The iptables backend (the default); test_nftables.py checks the same on the nftables backend.
    assert_ok(playbook("site"))
    assert "-j TPROXY --on-port 4999 --on-ip ::1 --tproxy-mark 0x1/0x1" in sh("router", "ip6tables-save -t mangle").stdout
    assert "[::1]:4999" in sh("router", "ss -Hltn 'sport = :4999'").stdout
    assert "fwmark 0x1/0x1 lookup 100" in sh("router", "ip -6 rule list").stdout
    assert "local default dev lo" in sh("router", "ip -6 route show table 100").stdout
    assert_ipv6_goes_through_envoy()


def test_a_router_advertisement_still_gives_the_router_its_default_route(lab):
    # With forwarding on, the kernel ignores advertisements unless accept_ra is 2: EC2's IPv6 default
    # route comes from them and would vanish when it expires.
    assert_ok(playbook("site"))
    assert sh("router", "cat /proc/sys/net/ipv6/conf/all/forwarding /proc/sys/net/ipv6/conf/eth0/accept_ra"
              ).stdout.split() == ["1", "2"]
    assert "proto ra" not in sh("router", "ip -6 route show default").stdout, "the lab had a default route from RA"
    try:
        proc = subprocess.run(["nsenter", "-t", holder("web"), "-n", "--", sys.executable, "-c", ADVERTISE],
                              capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == 0, proc.stderr
        assert wait_until(lambda: sh("router", "ip -6 route show default proto ra").stdout, 10, 0.1), \
            "no default route from the advertisement: %s" % sh("router", "ip -6 route show default").stdout
        found = sh("router", "ip -6 route show default proto ra").stdout
        assert "default via fe80::" in found and "dev eth0" in found, found
    finally:
        sh("router", "ip -6 route flush default proto ra", check=False)


def test_router_ipv6_false_leaves_ipv6_alone_and_the_default_puts_it_back(lab):
    extra = json.dumps({"router_ipv6": False})
    assert_ok(playbook("site", "-e", extra))
    assert_ok(playbook("site", "-e", extra), changed=0)
    assert "TPROXY-ENVOY" not in sh("router", "ip6tables-save").stdout
    assert "lookup 100" not in sh("router", "ip -6 rule list").stdout
    assert sh("router", "ls /etc/tproxy-envoy/router.rules6", check=False).returncode != 0
    # The client reaches the web server on their shared link, no longer through the router ...
    assert " via " not in sh("client", "ip -6 route get %s" % ADDR6["web"]).stdout
    assert curl6()["origin"] == ADDR6["client"]
    # ... while IPv4 still goes through Envoy.
    out = sh("client", "curl -sS --max-time 10 http://%s/ip" % ADDR["web"]).stdout
    assert json.loads(out)["origin"] == ADDR["router"]
    assert_ok(playbook("site"))
    assert "TPROXY-ENVOY" in sh("router", "ip6tables-save -t mangle").stdout
    assert "via %s" % ADDR6["router"] in sh("client", "ip -6 route get %s" % ADDR6["web"]).stdout
    assert curl6()["origin"] == ADDR6["router"]
