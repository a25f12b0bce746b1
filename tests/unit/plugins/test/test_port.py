"""port / port_list: what the argument spec accepts as int, within 1-65535, distinct in a list."""

import pytest
from ansible.module_utils.common.validation import check_type_int

from ansible_collections.tproxy.envoy.plugins.test import port as plugin
from ansible_collections.tproxy.envoy.plugins.test.port import port, port_list


@pytest.mark.parametrize("value", [1, 80, 65535, "8080", " 443"])
def test_ports_including_the_strings_extra_vars_give(value):
    assert port(value)


def test_a_whole_float_is_a_port_exactly_when_the_argument_spec_takes_it_as_int():
    # ansible-core 2.19 accepts 80.0 as int, 2.17 and 2.18 refuse it: the test follows the spec.
    try:
        check_type_int(80.0)
        accepted = True
    except TypeError:
        accepted = False
    assert port(80.0) is accepted


@pytest.mark.parametrize("value", [0, 65536, -1, "0", "not-a-port", "80.5", 80.5, True, False, None, [80], ""])
def test_non_ports(value):
    assert not port(value)


@pytest.mark.parametrize("value", [[], [80], [80, 443, 8080], ["80", 443], (1, 65535)])
def test_lists_of_distinct_ports(value):
    assert port_list(value)


@pytest.mark.parametrize("value", [[80, 80], [80, "80"], [0], [80, 70000], ["x"], [True], "80", 80, None, {"80": 1}])
def test_repeats_bad_elements_and_non_lists_are_refused(value):
    assert not port_list(value)


def test_both_tests_are_registered():
    assert plugin.TestModule().tests() == {"port": port, "port_list": port_list}
