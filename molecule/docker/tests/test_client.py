"""The client container: its route, a request that really passes the router's TPROXY rule
into Envoy and on to httpbin, and what must NOT be intercepted."""

import re

import testinfra

import topology_checks as check

testinfra_hosts = ["client"]


def tproxy_rule_packets(router):
    """Packets the port-80 TPROXY rule has matched so far (its counter in the router)."""
    out = router.check_output("iptables -t mangle -L TPROXY-ENVOY -v -x -n")
    counts = [int(line.split()[0]) for line in out.splitlines() if re.search(r"\bTPROXY\b.*dpt:80\b", line)]
    assert len(counts) == 1, out
    return counts[0]


def test_route_to_web_goes_through_the_router(host, addr):
    check.route_to_web_goes_through_the_router(host, addr)


def test_request_passes_the_tproxy_rule_into_envoy_and_on_to_httpbin(host, addr):
    router = testinfra.get_host("docker://router")
    before = tproxy_rule_packets(router)
    check.request_is_served_through_envoy_with_its_headers(host, addr)
    assert tproxy_rule_packets(router) > before


def test_direct_connections_to_the_proxy_and_admin_ports_are_refused(host, addr):
    check.direct_connections_to_the_router_are_refused(host, addr)


def test_ports_not_intercepted_are_still_forwarded(host, addr):
    check.ports_not_intercepted_are_still_forwarded(host, testinfra.get_host("docker://web"), addr)
