"""The Envoy process on the router, as the kernel sees it."""

import topology_checks as check
from conftest import role_container

testinfra_hosts = ["router"]


def test_envoy_holds_net_admin_alone_in_the_routers_network(host):
    pid = role_container(host, "router")["State"]["Pid"]
    check.assert_capabilities(host.file("/proc/%d/status" % pid).content_string, check.CAP_NET_ADMIN, required=check.CAP_NET_ADMIN)
    # Host networking: the very network namespace of the router (not a copy Docker made).
    assert host.check_output("readlink /proc/%d/ns/net" % pid) == host.check_output("readlink /proc/self/ns/net")


def test_envoy_sees_its_configuration_read_only(host):
    pid = role_container(host, "router")["State"]["Pid"]
    check.assert_mount_read_only(host.file("/proc/%d/mountinfo" % pid).content_string, "/etc/envoy")
