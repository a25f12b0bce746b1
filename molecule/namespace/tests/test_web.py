"""The httpbin process on the web host, as the kernel sees it."""

import topology_checks as check
from conftest import role_container

testinfra_hosts = ["web"]


def test_httpbin_holds_net_bind_service_alone_in_the_web_hosts_network(host):
    pid = role_container(host, "webserver")["State"]["Pid"]
    check.assert_capabilities(host.file("/proc/%d/status" % pid).content_string, check.CAP_NET_BIND_SERVICE)
    assert host.check_output("readlink /proc/%d/ns/net" % pid) == host.check_output("readlink /proc/self/ns/net")
