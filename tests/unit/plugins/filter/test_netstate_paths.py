"""netstate_paths: the one place that says where a netstate set's files live."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tproxy.envoy.plugins.filter import netstate_paths as plugin


def test_the_router_set():
    assert plugin.netstate_paths("router") == {"script": "/usr/local/sbin/tproxy-envoy-router",
                                               "rules": "/etc/tproxy-envoy/router.rules",
                                               "rules6": "/etc/tproxy-envoy/router.rules6",
                                               "nft_rules": "/etc/tproxy-envoy/router.nft",
                                               "unit": "tproxy-envoy-router.service"}


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", None, 1])
def test_names_that_would_escape_their_directory_are_refused(name):
    with pytest.raises(AnsibleFilterError, match="plain word"):
        plugin.netstate_paths(name)


def test_the_filter_is_registered():
    assert plugin.FilterModule().filters() == {"netstate_paths": plugin.netstate_paths}
