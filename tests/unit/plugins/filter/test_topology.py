"""topology: which routers serve which client and web server, in which families, with which routes."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.filter.topology import FilterModule, topology

CLIENT = {"ansible_host": "192.0.2.10", "tproxy_ipv6_address": "2001:db8::10"}
ROUTER = {"ansible_host": "192.0.2.100", "tproxy_ipv6_address": "2001:db8::100"}
WEB = {"ansible_host": "192.0.2.180", "tproxy_ipv6_address": "2001:db8::180"}


def inventory(routers=None, clients=None, webservers=None):
    """groups and hostvars of an inventory given as {group: {host: vars}}."""
    parts = {"routers": routers if routers is not None else {"router": dict(ROUTER)},
             "clients": clients if clients is not None else {"client": dict(CLIENT)},
             "webservers": webservers if webservers is not None else {"web": dict(WEB)}}
    groups = {"all": [h for part in parts.values() for h in part], "ungrouped": []}
    groups.update({name: list(hosts) for name, hosts in parts.items()})
    hostvars = {h: v for part in parts.values() for h, v in part.items()}
    return groups, hostvars


def view(groups, hostvars, host):
    return topology(groups, hostvars, host)


def test_one_dual_stack_router_routes_each_family_through_its_address():
    groups, hostvars = inventory()
    client = view(groups, hostvars, "client")["client"]
    assert client["routes"] == [{"dest": "192.0.2.180/32", "via": "192.0.2.100"},
                                {"dest": "2001:db8::180/128", "via": "2001:db8::100"}]
    assert client["routers"] == ["router"] and client["families"] == ["ipv4", "ipv6"]
    web = view(groups, hostvars, "web")["webserver"]
    assert web["families"] == ["ipv4", "ipv6"] and web["routers"] == ["router"]
    assert [(p["client"], p["family"], p["origins"]) for p in web["clients"]] == [
        ("client", "ipv4", ["192.0.2.100"]), ("client", "ipv6", ["2001:db8::100"])]
    # The router connects from its own address: no return routes.
    assert web["return_routes"] == []
    router = view(groups, hostvars, "router")["router"]
    assert router["ipv6"] is True and router["preserve_client_address"] is False and router["active"] is True
    assert router["client_networks"] == ["192.0.2.10/32", "2001:db8::10/128"]


def test_ipv4_only_hosts_get_ipv4_routes_only():
    groups, hostvars = inventory(clients={"client": {"ansible_host": "192.0.2.10"}},
                                 webservers={"web": WEB, "web4": {"ansible_host": "192.0.2.181"}})
    assert view(groups, hostvars, "client")["client"]["routes"] == [
        {"dest": "192.0.2.180/32", "via": "192.0.2.100"}, {"dest": "192.0.2.181/32", "via": "192.0.2.100"}]
    assert view(groups, hostvars, "router")["router"]["client_networks"] == ["192.0.2.10/32"]
    # A dual-stack client still reaches only the web servers that have an IPv6 address over IPv6.
    groups, hostvars = inventory(webservers={"web": WEB, "web4": {"ansible_host": "192.0.2.181"}})
    assert [r["dest"] for r in view(groups, hostvars, "client")["client"]["routes"]] == [
        "192.0.2.180/32", "192.0.2.181/32", "2001:db8::180/128"]
    assert [p["family"] for p in view(groups, hostvars, "web4")["webserver"]["clients"]] == ["ipv4"]


@pytest.mark.parametrize("off", [False, "false", "no", 0])
def test_ipv6_off_on_the_router_leaves_ipv6_to_the_network(off):
    groups, hostvars = inventory(routers={"router": dict(ROUTER, router_ipv6=off)})
    client = view(groups, hostvars, "client")["client"]
    assert client["routes"] == [{"dest": "192.0.2.180/32", "via": "192.0.2.100"}]
    assert client["families"] == ["ipv4"]
    assert [p["family"] for p in view(groups, hostvars, "web")["webserver"]["clients"]] == ["ipv4"]
    router = view(groups, hostvars, "router")["router"]
    assert router["ipv6"] is False
    # The clients' IPv6 addresses are still networks it forwards for (the rules pick the family they need).
    assert router["client_networks"] == ["192.0.2.10/32", "2001:db8::10/128"]


def test_router_ipv6_defaults_to_having_an_ipv6_address():
    groups, hostvars = inventory(routers={"router": {"ansible_host": "192.0.2.100"}})
    assert view(groups, hostvars, "router")["router"]["ipv6"] is False
    assert view(groups, hostvars, "client")["client"]["families"] == ["ipv4"]
    # Turned on without an IPv6 address there is no IPv6 gateway, so no IPv6 route either.
    groups, hostvars = inventory(routers={"router": {"ansible_host": "192.0.2.100", "router_ipv6": True}})
    assert view(groups, hostvars, "router")["router"]["ipv6"] is True
    assert view(groups, hostvars, "client")["client"]["routes"] == [{"dest": "192.0.2.180/32", "via": "192.0.2.100"}]


@pytest.mark.parametrize("on", [True, "true", "yes"])
def test_preserve_client_address_gives_the_web_server_return_routes_in_each_family(on):
    clients = {"client": dict(CLIENT), "client4": {"ansible_host": "198.51.100.20"}}
    groups, hostvars = inventory(routers={"router": dict(ROUTER, router_preserve_client_address=on)}, clients=clients)
    web = view(groups, hostvars, "web")["webserver"]
    assert web["return_routes"] == [{"dest": "192.0.2.10/32", "via": "192.0.2.100"},
                                    {"dest": "198.51.100.20/32", "via": "192.0.2.100"},
                                    {"dest": "2001:db8::10/128", "via": "2001:db8::100"}]
    # The web server sees each client's own address.
    assert [(p["client"], p["family"], p["origins"]) for p in web["clients"]] == [
        ("client", "ipv4", ["192.0.2.10"]), ("client", "ipv6", ["2001:db8::10"]), ("client4", "ipv4", ["198.51.100.20"])]
    # An IPv4-only web server needs only the IPv4 return routes.
    groups, hostvars = inventory(routers={"router": dict(ROUTER, router_preserve_client_address=on)},
                                 webservers={"web": {"ansible_host": "192.0.2.180"}})
    assert view(groups, hostvars, "web")["webserver"]["return_routes"] == [{"dest": "192.0.2.10/32", "via": "192.0.2.100"}]


def test_two_routers_without_a_virtual_address_the_first_carries_the_traffic():
    routers = {"r1": dict(ROUTER), "r2": {"ansible_host": "192.0.2.101", "tproxy_ipv6_address": "2001:db8::101",
                                          "router_preserve_client_address": True}}
    groups, hostvars = inventory(routers=routers)
    model = topology(groups, hostvars)
    assert model["router_groups"]["routers"]["active"] == ["r1"]
    assert model["router_groups"]["routers"]["routers"] == ["r1", "r2"]
    assert model["clients"]["client"]["routes"] == [{"dest": "192.0.2.180/32", "via": "192.0.2.100"},
                                                    {"dest": "2001:db8::180/128", "via": "2001:db8::100"}]
    # The first router's settings count: r2's preserve_client_address does not give return routes.
    assert model["webservers"]["web"]["return_routes"] == []
    assert model["webservers"]["web"]["routers"] == ["r1", "r2"]
    assert model["routers"]["r1"]["active"] and not model["routers"]["r2"]["active"]
    # Both accept the group's clients' forwarded traffic.
    assert model["routers"]["r2"]["client_networks"] == model["routers"]["r1"]["client_networks"]
    assert model["routers"]["r2"]["preserve_client_address"] is True


def test_two_routers_sharing_a_virtual_address_both_carry_the_traffic_through_it():
    shared = {"router_virtual_address": "192.0.2.99", "router_virtual_address6": "2001:db8::99",
              "router_preserve_client_address": True}
    routers = {"r1": dict(ROUTER, **shared),
               "r2": dict({"ansible_host": "192.0.2.101", "tproxy_ipv6_address": "2001:db8::101"}, **shared)}
    groups, hostvars = inventory(routers=routers)
    model = topology(groups, hostvars)
    assert model["router_groups"]["routers"]["active"] == ["r1", "r2"]
    assert model["clients"]["client"]["routes"] == [{"dest": "192.0.2.180/32", "via": "192.0.2.99"},
                                                    {"dest": "2001:db8::180/128", "via": "2001:db8::99"}]
    assert model["webservers"]["web"]["return_routes"] == [{"dest": "192.0.2.10/32", "via": "192.0.2.99"},
                                                           {"dest": "2001:db8::10/128", "via": "2001:db8::99"}]
    # Without the client's address kept, the web server sees either router.
    routers = {r: {k: v for k, v in hv.items() if k != "router_preserve_client_address"} for r, hv in routers.items()}
    groups, hostvars = inventory(routers=routers)
    pairs = topology(groups, hostvars, "web")["webserver"]["clients"]
    assert [p["origins"] for p in pairs] == [["192.0.2.100", "192.0.2.101"], ["2001:db8::100", "2001:db8::101"]]


def test_clients_choose_their_router_group():
    routers = {"r1": dict(ROUTER), "edge": {"ansible_host": "198.51.100.1", "router_group": "edge",
                                            "router_preserve_client_address": True}}
    clients = {"client": dict(CLIENT), "branch": {"ansible_host": "198.51.100.20", "tproxy_router_group": "edge"}}
    groups, hostvars = inventory(routers=routers, clients=clients)
    model = topology(groups, hostvars)
    assert model["clients"]["branch"]["routes"] == [{"dest": "192.0.2.180/32", "via": "198.51.100.1"}]
    assert model["clients"]["client"]["routers"] == ["r1"]
    # Each group's router forwards for its own clients only.
    assert model["routers"]["edge"]["client_networks"] == ["198.51.100.20/32"]
    assert model["routers"]["r1"]["client_networks"] == ["192.0.2.10/32", "2001:db8::10/128"]
    # Only the edge group keeps the client's address: the return route to its client goes through it.
    assert model["webservers"]["web"]["return_routes"] == [{"dest": "198.51.100.20/32", "via": "198.51.100.1"}]
    assert [(p["client"], p["routers"]) for p in model["webservers"]["web"]["clients"]] == [
        ("client", ["r1"]), ("client", ["r1"]), ("branch", ["edge"])]


def test_a_role_on_a_host_outside_its_group_gets_that_groups_view():
    groups, hostvars = inventory()
    hostvars["other"] = {"ansible_host": "192.0.2.50"}
    views = topology(groups, hostvars, "other")
    assert views["client"]["routes"] == [{"dest": "192.0.2.180/32", "via": "192.0.2.100"}]
    assert views["router"]["client_networks"] == ["192.0.2.10/32", "2001:db8::10/128"]
    assert views["router"]["active"] is False
    assert views["webserver"]["families"] == ["ipv4"]


def test_no_router_in_the_inventory_means_no_routes():
    groups, hostvars = inventory(routers={})
    client = topology(groups, hostvars, "client")["client"]
    assert client["routes"] == [] and client["group"] is None
    assert topology(groups, hostvars, "web")["webserver"]["clients"] == []
    assert topology(groups, hostvars)["router_groups"] == {}


@pytest.mark.parametrize("routers, clients, words", [
    ({"router": ROUTER}, {"client": dict(CLIENT, tproxy_router_group="edge")},
     ["client client", "tproxy_router_group 'edge'", "router_group: routers"]),
    ({"router": dict(ROUTER, router_group="core")}, {"client": CLIENT},
     ["client client", "tproxy_router_group 'routers' (the default)", "core"]),
    ({"router": dict(ROUTER, router_group=["a"])}, {"client": CLIENT}, ["router router", "router_group"]),
    ({"router": dict(ROUTER, router_ipv6="maybe")}, {"client": CLIENT}, ["router router", "router_ipv6", "maybe"]),
    ({"router": dict(ROUTER, router_preserve_client_address="sometimes")}, {"client": CLIENT},
     ["router router", "router_preserve_client_address"]),
    ({"router": dict(ROUTER, router_virtual_address="192.0.2.300")}, {"client": CLIENT},
     ["router router", "router_virtual_address ", "192.0.2.300"]),
    ({"router": dict(ROUTER, router_virtual_address="192.0.2.99", router_virtual_address6="2001:DB8::99")},
     {"client": CLIENT}, ["router_virtual_address6", "compressed"]),
    ({"router": dict(ROUTER, router_virtual_address="192.0.2.99")}, {"client": CLIENT},
     ["router group routers", "router_virtual_address6 is not set", "router_ipv6: false"]),
    ({"router": dict(ROUTER, router_virtual_address6="2001:db8::99")}, {"client": CLIENT},
     ["router group routers", "router_virtual_address is not"]),
    ({"r1": dict(ROUTER, router_virtual_address="192.0.2.99", router_virtual_address6="2001:db8::99"),
      "r2": dict(ROUTER, router_virtual_address="192.0.2.98", router_virtual_address6="2001:db8::99")},
     {"client": CLIENT}, ["router group routers", "router_virtual_address:", "r1 has '192.0.2.99'", "r2 has '192.0.2.98'"]),
    ({"r1": dict(ROUTER, router_virtual_address="192.0.2.99", router_virtual_address6="2001:db8::99"),
      "r2": dict(ROUTER, router_virtual_address="192.0.2.99", router_virtual_address6="2001:db8::99",
                 router_preserve_client_address=True)},
     {"client": CLIENT}, ["must agree on router_preserve_client_address", "r2 has True"]),
])
def test_a_bad_inventory_is_refused_naming_the_host_and_the_variable(routers, clients, words):
    groups, hostvars = inventory(routers=routers, clients=clients)
    for host in (None, "web"):
        with pytest.raises(AnsibleFilterError) as error:
            topology(groups, hostvars, host)
        message = str(error.value)
        assert message.startswith("tproxy.envoy.topology: ")
        for word in words:
            assert word in message, message


def test_the_groups_variable_is_required():
    with pytest.raises(AnsibleFilterError, match="groups magic variable"):
        topology(["router"], {})


def test_the_filter_is_registered():
    assert FilterModule().filters()["topology"] is topology
