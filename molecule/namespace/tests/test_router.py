"""The router: interception rules, policy routing and a least-privilege Envoy."""

import topology_checks as check
from conftest import docker_inspect

testinfra_hosts = ["router"]

CAP_NET_ADMIN = 1 << 12


def test_prerouting_jumps_once_into_the_own_chain(host):
    check.prerouting_jumps_once_into_the_own_chain(host)


def test_port_80_is_handed_to_envoy_on_loopback_with_a_masked_mark(host):
    check.port_80_goes_to_envoy_on_loopback_with_a_masked_mark(host)


def test_marked_packets_are_delivered_locally(host):
    check.marked_packets_are_delivered_locally(host)


def test_envoy_container_has_host_network_and_only_net_admin(host):
    info = docker_inspect(host, "tproxy-envoy")
    hc = info["HostConfig"]
    assert info["State"]["Running"] is True
    assert hc["NetworkMode"] == "host"
    assert hc["Privileged"] is False
    assert hc["CapDrop"] == ["ALL"]
    assert [c.replace("CAP_", "") for c in hc["CapAdd"]] == ["NET_ADMIN"]
    assert hc["RestartPolicy"]["Name"] == "unless-stopped"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/etc/envoy"]["RW"] is False


def test_envoy_process_holds_net_admin_and_nothing_else(host):
    pid = docker_inspect(host, "tproxy-envoy")["State"]["Pid"]
    status = host.file("/proc/%d/status" % pid).content_string
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert int(fields["CapEff"], 16) == CAP_NET_ADMIN
    assert fields["Uid"].split()[1] == "65534"


def test_admin_and_proxy_listen_on_loopback_only(host):
    for port in (19000, 4999):
        local = [line.split()[3] for line in host.check_output("ss -Hltn 'sport = :%d'" % port).splitlines()]
        assert local, "nothing listens on port %d" % port
        assert all(addr.startswith("127.0.0.1:") for addr in local), local


def test_docker_left_the_forward_policy_at_drop(host):
    # The realistic case the router role must survive (design §2b): a stock dockerd
    # that found forwarding off sets FORWARD to DROP.
    assert "-P FORWARD DROP" in host.check_output("iptables -S FORWARD")
