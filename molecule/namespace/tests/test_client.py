"""The client: its route, a request through Envoy, and what must NOT be intercepted."""

import os

import testinfra

import topology_checks as check

testinfra_hosts = ["client"]


def web_host():
    # The inventory directory: molecule's generated file there lacks the lab's connection settings.
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return testinfra.get_host("ansible://web?force_ansible=true&ansible_inventory=" + inventory)


def test_route_to_web_goes_through_the_router(host, lab):
    check.route_to_web_goes_through_the_router(host, lab)


def test_request_is_served_through_envoy_with_its_headers(host, lab):
    check.request_is_served_through_envoy_with_its_headers(host, lab)


def test_direct_connections_to_the_proxy_admin_and_router_ports_are_refused(host, lab):
    check.direct_connections_to_the_router_are_refused(host, lab)


def test_ports_not_intercepted_are_still_forwarded(host, lab):
    # Docker on the router set FORWARD to DROP (test_router checks it); the router still forwards.
    check.ports_not_intercepted_are_still_forwarded(host, web_host(), lab)
