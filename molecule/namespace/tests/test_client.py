"""What packets from the client do, beyond the hops verify.yml proves."""

import os

import testinfra

import topology_checks as check

testinfra_hosts = ["client"]


def lab_host(name):
    # The inventory directory: molecule's generated file there lacks the lab's connection settings.
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return testinfra.get_host("ansible://%s?force_ansible=true&ansible_inventory=%s" % (name, inventory))


def test_request_packets_pass_the_routers_tproxy_rule(host, lab):
    check.request_packets_pass_the_tproxy_rule(host, lab_host("router"), lab)


def test_ipv6_request_packets_pass_the_routers_ip6tables_tproxy_rule(host, lab6):
    check.request_packets_pass_the_tproxy_rule(host, lab_host("router"), lab6, family="ipv6")


def test_direct_connections_to_the_router_are_refused(host, lab):
    check.direct_connections_to_the_router_are_refused(host, lab_host("router"), lab)


def test_ports_not_intercepted_are_still_forwarded_past_dockers_drop_policy(host, lab):
    # The realistic case the router role must survive (design §2b): a stock dockerd that found
    # forwarding off set FORWARD to DROP on the router. Without it this test would prove less.
    assert "-P FORWARD DROP" in lab_host("router").check_output("iptables -S FORWARD"), "test setup"
    check.ports_not_intercepted_are_still_forwarded(host, lab_host("web"), lab)
