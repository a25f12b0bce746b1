"""What packets from the client container do, beyond the hops verify.yml proves."""

import testinfra

import topology_checks as check

testinfra_hosts = ["client"]


def test_request_packets_pass_the_routers_tproxy_rule(host, addr):
    check.request_packets_pass_the_tproxy_rule(host, testinfra.get_host("docker://router"), addr)


def test_direct_connections_to_the_router_are_refused(host, addr):
    check.direct_connections_to_the_router_are_refused(host, testinfra.get_host("docker://router"), addr)


def test_ports_not_intercepted_are_still_forwarded(host, addr):
    check.ports_not_intercepted_are_still_forwarded(host, testinfra.get_host("docker://web"), addr)
