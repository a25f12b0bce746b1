# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/lab/inventory.py: the lab's layout as Ansible sees it in inventories/lab, and checked."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = REPO / "tools" / "lab" / "inventory.py"
ANSIBLE = pathlib.Path(sys.executable).with_name("ansible")
KEYS = ("ansible_host", "lab_netns", "ansible_netns_pidfile", "lab_docker_engine", "group_names", "lab_dir",
        "lab_prefix_length", "lab_lan_netns")
# Optional: absent from an IPv4-only inventory.
OPTIONAL_KEYS = ("tproxy_ipv6_address", "lab_ipv6_prefix_length")


def _load_script():
    spec = importlib.util.spec_from_file_location("lab_inventory", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


inv = _load_script()


def ansible_view(inventory_dir):
    """{host: {key: value}} as Ansible templates them for each host of the inventory."""
    msg = "{{ {%s} | to_json }}" % ", ".join(["%r: %s" % (key, key) for key in KEYS]
                                             + ["%r: %s | default(none)" % (key, key) for key in OPTIONAL_KEYS])
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    proc = subprocess.run([str(ANSIBLE), "-i", str(inventory_dir), "all", "-m", "ansible.builtin.debug",
                           "-a", json.dumps({"msg": msg})], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    hosts = result["plays"][0]["tasks"][0]["hosts"]
    return {name: json.loads(res["msg"]) if isinstance(res["msg"], str) else res["msg"] for name, res in hosts.items()}


def as_ansible_sees_it(lab):
    return {name: {"ansible_host": host.address, "lab_netns": host.netns, "ansible_netns_pidfile": host.pidfile,
                   "lab_docker_engine": host.engine, "group_names": list(host.groups), "lab_dir": lab.dir,
                   "lab_prefix_length": lab.prefix_length, "lab_lan_netns": lab.lan_netns,
                   "tproxy_ipv6_address": host.address6, "lab_ipv6_prefix_length": lab.ipv6_prefix_length}
            for name, host in lab.hosts.items()}


def write_inventory(root, hosts_yml, files=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "hosts.yml").write_text(yaml.safe_dump(hosts_yml))
    for rel, content in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(content))
    return root


def small_lab(**overrides):
    """A valid two-host IPv4-only lab inventory in the YAML format; overrides go into all.vars."""
    all_vars = {"ansible_connection": "local", "lab_dir": "/var/lib/lab-test",
                "ansible_netns_pidfile": "{{ lab_dir }}/{{ inventory_hostname }}/holder.pid",
                "lab_netns": "t-{{ inventory_hostname }}", "lab_lan_netns": "t-lan", "lab_prefix_length": 24,
                "lab_docker_engine": False}
    all_vars.update(overrides)
    return {"all": {"vars": all_vars, "children": {
        "routers": {"vars": {"lab_docker_engine": True}, "hosts": {"r1": {"ansible_host": "198.51.100.1"}}},
        "clients": {"hosts": {"c1": {"ansible_host": "198.51.100.2"}}}}}}


def dual_stack(data, prefix_length=64, r1="2001:db8:1::1", c1="2001:db8:1::2"):
    """small_lab() made dual stack (in place, returned)."""
    data["all"]["vars"]["lab_ipv6_prefix_length"] = prefix_length
    data["all"]["children"]["routers"]["hosts"]["r1"]["tproxy_ipv6_address"] = r1
    data["all"]["children"]["clients"]["hosts"]["c1"]["tproxy_ipv6_address"] = c1
    return data


def test_the_lab_inventory_reads_as_ansible_templates_it():
    lab = inv.load()
    assert as_ansible_sees_it(lab) == ansible_view(inv.INVENTORY_DIR)


def test_the_lab_inventory_describes_the_documented_topology():
    lab = inv.load()
    assert {name: host.groups for name, host in lab.hosts.items()} == {
        "client": ("clients",), "router": ("routers",), "web": ("webservers",)}
    assert lab.engine_hosts == ("router", "web")
    assert all(address in lab.network for address in map(inv.ipaddress.IPv4Address, lab.addresses.values()))
    # Dual stack, in the documentation range.
    assert lab.addresses6 == {"client": "2001:db8::10", "router": "2001:db8::100", "web": "2001:db8::180"}
    assert str(lab.network6) == "2001:db8::/64" and lab.network6.subnet_of(inv.IPV6_DOCUMENTATION)


def test_an_inventory_without_ipv6_addresses_describes_an_ipv4_only_lab(tmp_path):
    root = write_inventory(tmp_path / "inv", small_lab())
    lab = inv.load(root)
    assert lab.addresses6 == {} and lab.network6 is None and lab.ipv6_prefix_length is None
    assert all(host.address6 is None for host in lab.hosts.values())
    assert as_ansible_sees_it(lab) == ansible_view(root)
    # lab.sh gets what it got before, and an empty ADDRESS6 and PREFIX6_LEN: it adds no IPv6 address.
    assert inv.as_shell(lab).splitlines() == [
        "LAB_DIR=/var/lib/lab-test", "LAN_NS=t-lan", "PREFIX_LEN=24", "PREFIX6_LEN=", "HOSTS=(c1 r1)",
        "ENGINE_HOSTS=(r1)", "declare -gA ADDRESS=([c1]=198.51.100.2 [r1]=198.51.100.1)", "declare -gA ADDRESS6=()",
        "declare -gA NETNS=([c1]=t-c1 [r1]=t-r1)",
        "declare -gA PIDFILE=([c1]=/var/lib/lab-test/c1/holder.pid [r1]=/var/lib/lab-test/r1/holder.pid)"]


def test_a_dual_stack_inventory_reads_as_ansible_templates_it(tmp_path):
    # A host may stay IPv4 only beside dual-stack ones; a prefix length with no IPv6 host is harmless.
    data = dual_stack(small_lab())
    del data["all"]["children"]["clients"]["hosts"]["c1"]["tproxy_ipv6_address"]
    root = write_inventory(tmp_path / "inv", data)
    lab = inv.load(root)
    assert lab.addresses6 == {"r1": "2001:db8:1::1"} and str(lab.network6) == "2001:db8:1::/64"
    assert as_ansible_sees_it(lab) == ansible_view(root)


def test_precedence_follows_ansible(tmp_path):
    # Each layer overrides the one before, as Ansible orders them; the reader must agree with it.
    root = write_inventory(tmp_path / "inv", small_lab(lab_lan_netns="from-file-all"), {
        "group_vars/all.yml": {"lab_lan_netns": "t-lan", "lab_netns": "all-{{ inventory_hostname }}",
                               "lab_docker_engine": True},
        "group_vars/clients/more.yml": {"lab_netns": "grp-{{ inventory_hostname }}"},
        "host_vars/r1.yml": {"lab_netns": "host-r1", "ansible_host": "198.51.100.9"},
    })
    lab = inv.load(root)
    assert lab.hosts["c1"].netns == "grp-c1"
    assert lab.hosts["r1"].netns == "host-r1" and lab.hosts["r1"].address == "198.51.100.9"
    # c1's groups set nothing: group_vars/all (true) beats the inventory file's all.vars (false).
    assert lab.hosts["c1"].engine is True
    assert as_ansible_sees_it(lab) == ansible_view(root)


def test_group_vars_all_beats_every_group_of_the_inventory_file(tmp_path):
    # Ansible's default VARIABLE_PRECEDENCE: inventory file group vars, then group_vars/ files.
    root = write_inventory(tmp_path / "inv", small_lab(), {"group_vars/all.yml": {"lab_docker_engine": False}})
    lab = inv.load(root)
    assert lab.engine_hosts == ()
    assert as_ansible_sees_it(lab) == ansible_view(root)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["all"]["children"]["clients"]["hosts"]["c1"].update(ansible_host="198.51.100.1"),
     "the same address 198.51.100.1"),
    (lambda d: d["all"]["children"]["clients"]["hosts"]["c1"].update(ansible_host="203.0.113.2"),
     "is not a host address of"),
    (lambda d: d["all"]["children"]["clients"]["hosts"]["c1"].update(ansible_host="c1.example"),
     "not an IPv4 address"),
    (lambda d: d["all"]["children"]["clients"]["hosts"].update({"client-number-1": {"ansible_host": "198.51.100.3"}}),
     "at most 10 characters"),
    (lambda d: d["all"]["children"]["clients"]["hosts"]["c1"].update(lab_netns="t-lan"), "the same namespace t-lan"),
    (lambda d: d["all"]["children"]["clients"]["hosts"]["c1"].update(lab_netns="a b"), "not a namespace name"),
    (lambda d: d["all"]["children"]["clients"]["hosts"]["c1"].update(ansible_netns_pidfile="/tmp/holder.pid"),
     "must be a file in /var/lib/lab-test/c1"),
    (lambda d: d["all"]["children"]["clients"]["hosts"]["c1"].update(lab_prefix_length=16),
     "lab_prefix_length differs between"),
    (lambda d: d["all"]["vars"].update(lab_dir="/lab"), "lab_dir must be"),
    (lambda d: d["all"]["vars"].update(lab_prefix_length=31), "lab_prefix_length must be 8..30"),
    (lambda d: d["all"]["vars"].update(lab_docker_engine="yes"), "must be true or false"),
    (lambda d: d["all"]["vars"].pop("lab_lan_netns"), "lab_lan_netns is not set"),
    (lambda d: d["all"]["vars"].update(lab_dir="{{ lab_netns }}", lab_netns="{{ lab_dir }}"), "refers to itself"),
    (lambda d: d["all"]["vars"].update(lab_netns="{{ nowhere }}"), "nowhere is not set"),
])
def test_an_inventory_lab_sh_cannot_build_is_refused(tmp_path, change, message):
    data = small_lab()
    change(data)
    with pytest.raises(inv.LabInventoryError, match=message):
        inv.load(write_inventory(tmp_path / "inv", data))


def _c1(data, address):
    data["all"]["children"]["clients"]["hosts"]["c1"]["tproxy_ipv6_address"] = address


@pytest.mark.parametrize("change, message", [
    (lambda d: _c1(d, "2001:db9::2"), r"c1: tproxy_ipv6_address 2001:db9::2 is outside 2001:db8::/32, the documentation"),
    (lambda d: _c1(d, "fd00::2"), "outside 2001:db8::/32"),
    (lambda d: _c1(d, "::ffff:198.51.100.2"), "outside 2001:db8::/32"),
    (lambda d: _c1(d, "198.51.100.2"), "c1: tproxy_ipv6_address '198.51.100.2' is not an IPv6 address"),
    (lambda d: _c1(d, "c1.example"), "is not an IPv6 address"),
    (lambda d: _c1(d, "2001:DB8:1::0002"), "write tproxy_ipv6_address '2001:DB8:1::0002' as 2001:db8:1::2"),
    (lambda d: _c1(d, "2001:db8:2::2"), "r1: 2001:db8:1::1 is not a host address of 2001:db8:2::/64"),
    (lambda d: _c1(d, "2001:db8:1::"), "2001:db8:1:: is not a host address of 2001:db8:1::/64"),
    (lambda d: _c1(d, "2001:db8:1::1"), "c1 and r1 have the same IPv6 address 2001:db8:1::1"),
    (lambda d: d["all"]["vars"].pop("lab_ipv6_prefix_length"), "tproxy_ipv6_address is set, lab_ipv6_prefix_length is not"),
    (lambda d: d["all"]["vars"].update(lab_ipv6_prefix_length=16), "lab_ipv6_prefix_length must be 32..126"),
    (lambda d: d["all"]["vars"].update(lab_ipv6_prefix_length=128), "lab_ipv6_prefix_length must be 32..126"),
    (lambda d: d["all"]["vars"].update(lab_ipv6_prefix_length="sixty-four"), "lab_ipv6_prefix_length must be a number"),
    (lambda d: d["all"]["children"]["clients"]["hosts"]["c1"].update(lab_ipv6_prefix_length=48),
     "lab_ipv6_prefix_length differs between"),
])
def test_an_ipv6_address_outside_the_documentation_range_or_the_lan_is_refused(tmp_path, change, message):
    data = dual_stack(small_lab())
    change(data)
    with pytest.raises(inv.LabInventoryError, match=message):
        inv.load(write_inventory(tmp_path / "inv", data))


def test_shell_output_gives_bash_the_same_values():
    lab = inv.load()
    script = inv.as_shell(lab) + (
        'for h in "${HOSTS[@]}"; do echo "$h ${ADDRESS[$h]} ${ADDRESS6[$h]} ${NETNS[$h]} ${PIDFILE[$h]}"; done\n'
        'echo "engines ${ENGINE_HOSTS[*]}"; echo "lab $LAB_DIR $LAN_NS $PREFIX_LEN $PREFIX6_LEN"\n')
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, check=True).stdout
    expected = ["%s %s %s %s %s" % (h.name, h.address, h.address6, h.netns, h.pidfile) for h in lab.hosts.values()]
    expected += ["engines " + " ".join(lab.engine_hosts),
                 "lab %s %s %d %d" % (lab.dir, lab.lan_netns, lab.prefix_length, lab.ipv6_prefix_length)]
    assert out.splitlines() == expected


def test_shell_output_quotes_what_it_emits(tmp_path):
    lab = inv.Lab(dir="/var/lib/x y", lan_netns="lan", prefix_length=24,
                  hosts={"h": inv.Host(name="h", groups=(), address="198.51.100.2", netns="n",
                                       pidfile="/var/lib/x y/h/$(touch pwned).pid", engine=False)})
    out = subprocess.run(["bash", "-c", inv.as_shell(lab) + 'echo "$LAB_DIR|${PIDFILE[h]}"'], capture_output=True,
                         text=True, check=True, cwd=tmp_path).stdout
    assert out == "/var/lib/x y|/var/lib/x y/h/$(touch pwned).pid\n"
    assert not (tmp_path / "pwned").exists()


def test_command_line_reports_a_bad_inventory(tmp_path):
    data = small_lab(lab_prefix_length=40)
    proc = subprocess.run([sys.executable, str(SCRIPT), "shell", str(write_inventory(tmp_path / "inv", data))],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "lab inventory: lab_prefix_length must be 8..30" in proc.stderr


def test_a_twin_is_the_same_lab_under_other_names_as_ansible_templates_it(tmp_path):
    lab = inv.load()
    proc = subprocess.run([sys.executable, str(SCRIPT), "twin", str(inv.INVENTORY_DIR), str(tmp_path / "twin"), "lab2"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    twin = inv.load(tmp_path / "twin")
    assert as_ansible_sees_it(twin) == ansible_view(tmp_path / "twin")
    assert (twin.dir, twin.lan_netns) == ("/dev/shm/lab2", "lab2-lan")
    assert {name: host.netns for name, host in twin.hosts.items()} == {name: "lab2-" + name for name in lab.hosts}
    # Everything else is the source's: hosts, groups, addresses, engines.
    assert {name: (host.groups, host.address, host.address6, host.engine) for name, host in twin.hosts.items()} == {
        name: (host.groups, host.address, host.address6, host.engine) for name, host in lab.hosts.items()}
    # Made again (the Makefile does so when the source changes): the same, nothing left over.
    inv.twin(inv.INVENTORY_DIR, tmp_path / "twin", "lab2")
    assert sorted(p.name for p in (tmp_path / "twin").iterdir()) == ["group_vars", "hosts.yml", inv.TWIN_FILE]


def test_a_twin_whose_names_a_group_or_host_sets_is_refused(tmp_path):
    data = small_lab()
    data["all"]["children"]["routers"]["vars"]["lab_netns"] = "fixed-{{ inventory_hostname }}"
    source = write_inventory(tmp_path / "inv", data)
    with pytest.raises(inv.LabInventoryError, match=r"twin: r1: lab_netns set below all.vars"):
        inv.twin(source, tmp_path / "twin", "lab2")
    with pytest.raises(inv.LabInventoryError, match="cannot name"):
        inv.twin(source, tmp_path / "twin", "no/slash")
