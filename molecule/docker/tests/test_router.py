"""The Envoy process the router role started on the controller's engine, as the kernel sees it:
in the router container's network namespace, as nobody, with NET_ADMIN alone."""

import os
import pathlib

import topology_checks as check
from conftest import inspect, role_container


def envoy_pid():
    return role_container("router")["State"]["Pid"]


def test_envoy_is_in_the_router_containers_network_namespace():
    namespaces = {os.stat("/proc/%d/ns/net" % pid).st_ino for pid in (inspect("router")["State"]["Pid"], envoy_pid())}
    assert len(namespaces) == 1


def test_envoy_runs_as_nobody_with_net_admin_alone():
    status = pathlib.Path("/proc/%d/status" % envoy_pid()).read_text()
    fields = check.assert_capabilities(status, check.CAP_NET_ADMIN, required=check.CAP_NET_ADMIN)
    assert fields["Uid"].split() == ["65534"] * 4


def test_envoy_sees_its_configuration_read_only():
    check.assert_mount_read_only(pathlib.Path("/proc/%d/mountinfo" % envoy_pid()).read_text(), "/etc/envoy")
