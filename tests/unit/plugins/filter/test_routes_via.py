"""routes_via builds host routes of either family; route_problems names what is wrong with given ones."""

import pytest

from ansible_collections.tproxy.envoy.plugins.filter.routes_via import route_problems, routes_via


def test_host_routes_get_the_prefix_of_their_family():
    assert routes_via(["192.0.2.180", "2001:db8::180", "198.51.100.0/24"], "192.0.2.100") == [
        {"dest": "192.0.2.180/32", "via": "192.0.2.100"}, {"dest": "2001:db8::180/128", "via": "192.0.2.100"},
        {"dest": "198.51.100.0/24", "via": "192.0.2.100"}]


def test_no_gateway_no_routes():
    assert routes_via(["2001:db8::180"], None) == []


def test_routes_of_both_families_are_fine():
    assert route_problems([{"dest": "192.0.2.180/32", "via": "192.0.2.100"},
                           {"dest": "2001:db8::/64", "via": "2001:db8::100"}]) == []


@pytest.mark.parametrize("route, words", [
    ({"dest": "192.0.2.180/32", "via": "2001:db8::100"}, "same family"),
    ({"dest": "2001:db8::180/128", "via": "192.0.2.100"}, "same family"),
    ({"dest": "192.0.2.180", "via": "192.0.2.100"}, "dest must be a network"),
    ({"dest": "192.0.2.1/24", "via": "192.0.2.100"}, "dest must be a network"),
    ({"dest": "2001:DB8::/64", "via": "2001:db8::100"}, "dest must be a network"),
    ({"dest": "2001:db8::/64", "via": "2001:db8:0::100"}, "via must be one address"),
    ({"dest": "192.0.2.0/24", "via": "192.0.2.100/32"}, "via must be one address"),
    ({"dest": "192.0.2.0/24"}, "dict with dest and via"),
    ("192.0.2.0/24", "dict with dest and via"),
])
def test_each_problem_names_the_route_and_what_is_wrong(route, words):
    problems = route_problems([{"dest": "198.51.100.0/24", "via": "192.0.2.100"}, route])
    assert len(problems) == 1 and problems[0].startswith("route 2 ") and words in problems[0]
