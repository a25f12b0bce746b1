"""The router container: interception rules, policy routing, and an Envoy that shares its
network namespace with only NET_ADMIN, as nobody."""

import os

import topology_checks as check
from conftest import CAP_NET_ADMIN, inspect, proc_status

testinfra_hosts = ["router"]


def test_prerouting_jumps_once_into_the_own_chain(host):
    check.prerouting_jumps_once_into_the_own_chain(host)


def test_port_80_is_handed_to_envoy_on_loopback_with_a_masked_mark(host):
    check.port_80_goes_to_envoy_on_loopback_with_a_masked_mark(host)


def test_marked_packets_are_delivered_locally(host):
    check.marked_packets_are_delivered_locally(host)


def test_kernel_settings_are_the_ones_the_role_wants(host):
    # Set when the container was created (/proc/sys is read-only inside); the role verified them.
    wanted = {"ip_forward": "1", "conf/all/rp_filter": "2", "conf/all/send_redirects": "0",
              "conf/default/send_redirects": "0", "conf/eth0/send_redirects": "0"}
    live = {key: host.file("/proc/sys/net/ipv4/" + key).content_string.strip() for key in wanted}
    assert live == wanted


def test_router_container_has_only_net_admin_added():
    hc = inspect("router")["HostConfig"]
    assert hc["Privileged"] is False
    assert [c.replace("CAP_", "") for c in hc["CapAdd"]] == ["NET_ADMIN"]


def test_envoy_container_is_in_the_routers_network_namespace():
    router, envoy = inspect("router"), inspect("router-envoy")
    assert envoy["State"]["Running"] is True
    assert envoy["HostConfig"]["NetworkMode"] == "container:" + router["Id"]
    # The same namespace, as the kernel sees it (not only as Docker recorded it).
    namespaces = {os.stat("/proc/%d/ns/net" % c["State"]["Pid"]).st_ino for c in (router, envoy)}
    assert len(namespaces) == 1


def test_envoy_container_has_only_net_admin_and_a_read_only_config():
    info = inspect("router-envoy")
    hc = info["HostConfig"]
    assert hc["Privileged"] is False
    assert hc["CapDrop"] == ["ALL"]
    assert [c.replace("CAP_", "") for c in hc["CapAdd"]] == ["NET_ADMIN"]
    assert info["Config"]["User"] == "65534:65534"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/etc/envoy"]["RW"] is False
    assert mounts["/etc/envoy"]["Source"].startswith(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def test_envoy_process_runs_as_nobody_with_net_admin_alone():
    fields = proc_status(inspect("router-envoy")["State"]["Pid"])
    assert int(fields["CapEff"], 16) == CAP_NET_ADMIN
    assert fields["Uid"].split() == ["65534"] * 4


def test_admin_and_proxy_listen_on_loopback_only(host):
    for port in (19000, 4999):
        local = [line.split()[3] for line in host.check_output("ss -Hltn 'sport = :%d'" % port).splitlines()]
        assert local, "nothing listens on port %d" % port
        assert all(address.startswith("127.0.0.1:") for address in local), local
