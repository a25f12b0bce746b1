"""The httpbin process the webserver role started on the controller's engine, as the kernel
sees it: in the web container's network namespace, with NET_BIND_SERVICE at most."""

import os
import pathlib

import topology_checks as check
from conftest import inspect, role_container


def test_httpbin_is_in_the_web_containers_network_namespace_with_net_bind_service_at_most():
    web, httpbin = inspect("web")["State"]["Pid"], role_container("webserver")["State"]["Pid"]
    assert len({os.stat("/proc/%d/ns/net" % pid).st_ino for pid in (web, httpbin)}) == 1
    check.assert_capabilities(pathlib.Path("/proc/%d/status" % httpbin).read_text(), check.CAP_NET_BIND_SERVICE)
