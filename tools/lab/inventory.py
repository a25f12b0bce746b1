#!/usr/bin/env python
# Copyright (c) tproxy.envoy developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's layout, read from its one home: the lab inventory (inventories/lab).

Addresses, the prefix length, namespace names, the lab directory and the holder PID files are
inventory variables; tools/lab/lab.sh, the bench and the tests read them here instead of
repeating them. A host may also have an IPv6 address (tproxy_ipv6_address, on the prefix length
lab_ipv6_prefix_length): the lab is then dual stack. Without one the host is IPv4 only, as before.

    tools/lab/inventory.py shell [INVENTORY_DIR]   bash assignments (for lab.sh to eval)
    tools/lab/inventory.py json [INVENTORY_DIR]    the same as JSON
    tools/lab/inventory.py twin INVENTORY_DIR TWIN_DIR NAME
                                                   the same lab under another name (see twin())

Python: ``load()`` returns a ``Lab``. The inventory is read as plain YAML with Ansible's variable
precedence (inventory file group vars < group_vars/all < group_vars/GROUP < host vars < host_vars/HOST);
the values read here may use plain Jinja variables (``{{ lab_dir }}/{{ inventory_hostname }}``),
not Ansible's filters. tests/unit/tools/test_lab_inventory.py checks that Ansible sees the same.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import pathlib
import re
import shlex
import sys

import jinja2
import jinja2.meta
import yaml

INVENTORY_DIR = pathlib.Path(__file__).resolve().parents[2] / "inventories" / "lab"
# Lab-wide: every host must agree on them.
LAB_WIDE = ("lab_dir", "lab_lan_netns", "lab_prefix_length")
PER_HOST = ("ansible_host", "lab_netns", "ansible_netns_pidfile", "lab_docker_engine")
# Optional: an inventory without them describes an IPv4-only lab. The prefix length is lab-wide
# too, and needed once a host has an IPv6 address.
IPV6_ADDRESS, IPV6_PREFIX_LENGTH = "tproxy_ipv6_address", "lab_ipv6_prefix_length"
# The lab keeps to the documentation ranges (RFC 3849 for IPv6): nothing it builds can clash
# with a real network the machine reaches.
IPV6_DOCUMENTATION = ipaddress.IPv6Network("2001:db8::/32")
# A host's name ends up in "veth-HOST", and an interface name has at most 15 characters.
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,9}$")
NETNS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
VARS_SUFFIXES = ("", ".yml", ".yaml")
_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


class LabInventoryError(ValueError):
    """The lab inventory does not describe a lab that tools/lab/lab.sh can build."""


@dataclasses.dataclass(frozen=True)
class Host:
    name: str
    groups: tuple
    address: str
    netns: str
    pidfile: str
    engine: bool
    address6: str | None = None  # None: the host is IPv4 only


@dataclasses.dataclass(frozen=True)
class Lab:
    dir: str
    lan_netns: str
    prefix_length: int
    hosts: dict  # name -> Host, sorted by name
    ipv6_prefix_length: int | None = None  # None: no host has an IPv6 address

    @property
    def network(self):
        """The bridged LAN the hosts share (the network of their addresses and the prefix length)."""
        first = next(iter(self.hosts.values()))
        return ipaddress.ip_interface("%s/%d" % (first.address, self.prefix_length)).network

    @property
    def addresses(self):
        return {name: host.address for name, host in self.hosts.items()}

    @property
    def network6(self):
        """The LAN's IPv6 network, or None in an IPv4-only lab."""
        first = next((host.address6 for host in self.hosts.values() if host.address6), None)
        if first is None or self.ipv6_prefix_length is None:
            return None
        return ipaddress.ip_interface("%s/%d" % (first, self.ipv6_prefix_length)).network

    @property
    def addresses6(self):
        """{name: IPv6 address} of the hosts that have one (empty in an IPv4-only lab)."""
        return {name: host.address6 for name, host in self.hosts.items() if host.address6}

    @property
    def engine_hosts(self):
        return tuple(name for name, host in self.hosts.items() if host.engine)


# ---------------------------------------------------------------- reading the YAML


def _read_yaml(path):
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LabInventoryError("cannot read %s: %s" % (path, exc)) from exc
    return data or {}


def _vars_files(directory, name):
    """group_vars/NAME(.yml|.yaml) or every file in group_vars/NAME/, as Ansible reads them."""
    found = []
    for suffix in VARS_SUFFIXES:
        path = directory / (name + suffix)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml")))
    return found


def _read_vars(directory, name):
    merged = {}
    for path in _vars_files(directory, name):
        data = _read_yaml(path)
        if not isinstance(data, dict):
            raise LabInventoryError("%s does not hold a mapping of variables" % path)
        merged.update(data)
    return merged


def _walk(name, body, depth, parents, groups, hosts):
    """Collect each group's vars and depth, and each host's vars and groups (YAML inventory format)."""
    body = body or {}
    group = groups.setdefault(name, {"vars": {}, "depth": depth})
    group["depth"] = max(group["depth"], depth)
    group["vars"].update(body.get("vars") or {})
    for host, hostvars in (body.get("hosts") or {}).items():
        entry = hosts.setdefault(host, {"vars": {}, "groups": set()})
        entry["vars"].update(hostvars or {})
        entry["groups"].update((*parents, name))
    for child, child_body in (body.get("children") or {}).items():
        _walk(child, child_body, depth + 1, (*parents, name), groups, hosts)


def raw_hostvars(inventory_dir=INVENTORY_DIR):
    """{host: (merged variables before templating, sorted group names)} from the YAML inventory."""
    inventory_dir = pathlib.Path(inventory_dir)
    sources = sorted(p for p in inventory_dir.iterdir() if p.is_file() and p.suffix in (".yml", ".yaml"))
    if not sources:
        raise LabInventoryError("no inventory file (*.yml) in %s" % inventory_dir)
    groups, hosts = {}, {}
    for source in sources:
        data = _read_yaml(source)
        for name, body in data.items():
            _walk(name, body, 0 if name == "all" else 1, () if name == "all" else ("all",), groups, hosts)
    result = {}
    for host, entry in hosts.items():
        mine = sorted((g for g in entry["groups"] | {"all"} if g in groups),
                      key=lambda g: (groups[g]["depth"], g))
        merged = {}
        # Ansible's default order (VARIABLE_PRECEDENCE): every group's vars from the inventory
        # file, shallow groups first, then the group_vars/ files in the same order.
        for group in mine:
            merged.update(groups[group]["vars"])
        for group in mine:
            merged.update(_read_vars(inventory_dir / "group_vars", group))
        merged.update(entry["vars"])
        merged.update(_read_vars(inventory_dir / "host_vars", host))
        result[host] = (merged, tuple(g for g in mine if g != "all"))
    return result


# ---------------------------------------------------------------- templating and checks


def _render(name, variables, host, stack=()):
    if name not in variables:
        raise LabInventoryError("%s: %s is not set in the lab inventory" % (host, name))
    value = variables[name]
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    if name in stack:
        raise LabInventoryError("%s: %s refers to itself (%s)" % (host, name, " -> ".join((*stack, name))))
    context = {"inventory_hostname": host, "inventory_hostname_short": host.split(".", 1)[0]}
    for dep in jinja2.meta.find_undeclared_variables(_JINJA.parse(value)):
        if dep not in context:
            context[dep] = _render(dep, variables, host, (*stack, name))
    try:
        return _JINJA.from_string(value).render(context)
    except jinja2.TemplateError as exc:
        raise LabInventoryError("%s: cannot render %s=%r: %s" % (host, name, value, exc)) from exc


def _as_bool(value, where):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise LabInventoryError("%s must be true or false, not %r" % (where, value))


def _as_int(value, name):
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise LabInventoryError("%s must be a number" % name) from exc


def _check(lab):
    lab_dir = pathlib.PurePosixPath(lab.dir)
    if not lab_dir.is_absolute() or len(lab_dir.parts) < 3 or str(lab_dir) != lab.dir:
        raise LabInventoryError("lab_dir must be a normalised absolute path below a top directory, not %r" % lab.dir)
    if not 8 <= lab.prefix_length <= 30:
        raise LabInventoryError("lab_prefix_length must be 8..30, not %d" % lab.prefix_length)
    if not NETNS_NAME.match(lab.lan_netns):
        raise LabInventoryError("lab_lan_netns %r is not a namespace name" % lab.lan_netns)
    if not lab.hosts:
        raise LabInventoryError("the lab inventory has no hosts")
    seen_addresses, seen_netns = {}, {lab.lan_netns: "lab_lan_netns"}
    for name, host in lab.hosts.items():
        if not HOST_NAME.match(name):
            raise LabInventoryError("host name %r: lower-case letters, digits and '-', at most 10 characters" % name)
        try:
            address = ipaddress.IPv4Address(host.address)
        except ValueError as exc:
            raise LabInventoryError("%s: ansible_host %r is not an IPv4 address" % (name, host.address)) from exc
        if address not in lab.network or address in (lab.network.network_address, lab.network.broadcast_address):
            raise LabInventoryError("%s: %s is not a host address of %s" % (name, address, lab.network))
        if not NETNS_NAME.match(host.netns):
            raise LabInventoryError("%s: lab_netns %r is not a namespace name" % (name, host.netns))
        for table, key, what in ((seen_addresses, host.address, "address"), (seen_netns, host.netns, "namespace")):
            if key in table:
                raise LabInventoryError("%s and %s have the same %s %s" % (table[key], name, what, key))
            table[key] = name
        pidfile = pathlib.PurePosixPath(host.pidfile)
        if pidfile.parent != lab_dir / name or str(pidfile) != host.pidfile:
            raise LabInventoryError("%s: ansible_netns_pidfile %r must be a file in %s (lab.sh writes it there)"
                                    % (name, host.pidfile, lab_dir / name))
    _check_ipv6(lab)


def _check_ipv6(lab):
    if lab.ipv6_prefix_length is not None and not 32 <= lab.ipv6_prefix_length <= 126:
        raise LabInventoryError("%s must be 32..126 (a network inside %s), not %d"
                                % (IPV6_PREFIX_LENGTH, IPV6_DOCUMENTATION, lab.ipv6_prefix_length))
    seen = {}
    for name, host in lab.hosts.items():
        if host.address6 is None:
            continue
        try:
            address = ipaddress.IPv6Address(host.address6)
        except ValueError as exc:
            raise LabInventoryError("%s: %s %r is not an IPv6 address" % (name, IPV6_ADDRESS, host.address6)) from exc
        if address not in IPV6_DOCUMENTATION:
            raise LabInventoryError("%s: %s %s is outside %s, the documentation range the lab keeps to"
                                    % (name, IPV6_ADDRESS, address, IPV6_DOCUMENTATION))
        # One spelling, the kernel's (`ip addr` prints it so): lab.sh compares the two as text.
        if str(address) != host.address6:
            raise LabInventoryError("%s: write %s %r as %s" % (name, IPV6_ADDRESS, host.address6, address))
        if lab.ipv6_prefix_length is None:
            raise LabInventoryError("%s: %s is set, %s is not (the lab needs both)"
                                    % (name, IPV6_ADDRESS, IPV6_PREFIX_LENGTH))
        # The all-zeros address of a network is its subnet-router anycast address, not a host's.
        if address not in lab.network6 or address == lab.network6.network_address:
            raise LabInventoryError("%s: %s is not a host address of %s" % (name, address, lab.network6))
        if address in seen:
            raise LabInventoryError("%s and %s have the same IPv6 address %s" % (seen[address], name, address))
        seen[address] = name


def _optional(key, variables, host):
    """An optional variable: None when unset (or set to nothing), else rendered like the others."""
    if variables.get(key) in (None, ""):
        return None
    return _render(key, variables, host)


def load(inventory_dir=INVENTORY_DIR):
    """The lab described by the inventory, checked; raises LabInventoryError."""
    hosts, wide = {}, {}
    for name, (variables, groups) in sorted(raw_hostvars(inventory_dir).items()):
        values = {key: _render(key, variables, name) for key in LAB_WIDE + PER_HOST}
        for key in LAB_WIDE:
            if wide.setdefault(key, (values[key], name))[0] != values[key]:
                raise LabInventoryError("%s differs between %s and %s: one lab has one value"
                                        % (key, wide[key][1], name))
        ipv6_prefix_length = _optional(IPV6_PREFIX_LENGTH, variables, name)
        if wide.setdefault(IPV6_PREFIX_LENGTH, (ipv6_prefix_length, name))[0] != ipv6_prefix_length:
            raise LabInventoryError("%s differs between %s and %s: one lab has one value"
                                    % (IPV6_PREFIX_LENGTH, wide[IPV6_PREFIX_LENGTH][1], name))
        address6 = _optional(IPV6_ADDRESS, variables, name)
        hosts[name] = Host(name=name, groups=groups, address=str(values["ansible_host"]), netns=str(values["lab_netns"]),
                           pidfile=str(values["ansible_netns_pidfile"]),
                           engine=_as_bool(values["lab_docker_engine"], "%s: lab_docker_engine" % name),
                           address6=None if address6 is None else str(address6))
    if not hosts:
        raise LabInventoryError("the lab inventory in %s has no hosts" % inventory_dir)
    prefix_length = _as_int(wide["lab_prefix_length"][0], "lab_prefix_length")
    ipv6_prefix_length = wide[IPV6_PREFIX_LENGTH][0]
    if ipv6_prefix_length is not None:
        ipv6_prefix_length = _as_int(ipv6_prefix_length, IPV6_PREFIX_LENGTH)
    lab = Lab(dir=str(wide["lab_dir"][0]), lan_netns=str(wide["lab_lan_netns"][0]), prefix_length=prefix_length,
              hosts=hosts, ipv6_prefix_length=ipv6_prefix_length)
    _check(lab)
    return lab


# ---------------------------------------------------------------- a second lab of the same layout

# Sorts after every inventory file of the source, so that its values win, for Ansible as for load().
TWIN_FILE = "zz-twin.yml"


def twin(inventory_dir, twin_dir, name):
    """Make TWIN_DIR the lab of INVENTORY_DIR under another NAME, so that both can be up at once (the
    topology tests in two halves, one on each): the same hosts and addresses (each lab's LAN is in a
    namespace of its own), with lab_dir /dev/shm/NAME and namespaces NAME-HOST and NAME-lan. TWIN_DIR
    links to the source's files and adds one file of its own, so the layout keeps its one home."""
    source, target = pathlib.Path(inventory_dir).resolve(), pathlib.Path(twin_dir)
    if not NETNS_NAME.match(name + "-lan") or "/" in name:
        raise LabInventoryError("twin: %r cannot name a lab directory and namespaces" % name)
    original = load(source)
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        if old.is_symlink() or old.name == TWIN_FILE:
            old.unlink()
    for entry in sorted(source.iterdir()):
        if entry.name in ("group_vars", "host_vars") or entry.suffix in (".yml", ".yaml"):
            (target / entry.name).symlink_to(entry)
    # In memory, as the fleet lab: the engines' images are written at every `up`, removed at every `down`.
    overrides = {"lab_dir": "/dev/shm/%s" % name, "lab_netns": "%s-{{ inventory_hostname }}" % name,
                 "lab_lan_netns": "%s-lan" % name}
    (target / TWIN_FILE).write_text("# Written by tools/lab/inventory.py twin from %s: do not edit.\n%s"
                                    % (source, yaml.safe_dump({"all": {"vars": overrides}}, default_flow_style=False)))
    lab = load(target)
    pairs = [("lab_dir", lab.dir, original.dir), ("lab_lan_netns", lab.lan_netns, original.lan_netns)]
    pairs += [("%s: lab_netns" % host, lab.hosts[host].netns, original.hosts[host].netns) for host in lab.hosts]
    clashes = [key for key, ours, theirs in pairs if ours == theirs]
    if clashes:
        raise LabInventoryError("twin: %s set below all.vars in %s keep the source's values: %s"
                                % (", ".join(clashes), source, TWIN_FILE))
    return lab


# ---------------------------------------------------------------- output


def as_dict(lab):
    network6 = lab.network6
    return {"dir": lab.dir, "lan_netns": lab.lan_netns, "prefix_length": lab.prefix_length,
            "network": str(lab.network), "ipv6_prefix_length": lab.ipv6_prefix_length,
            "network6": None if network6 is None else str(network6),
            "hosts": {name: dataclasses.asdict(host) for name, host in lab.hosts.items()}}


def as_shell(lab):
    """bash assignments; every value quoted, so the inventory cannot inject commands."""
    q = shlex.quote

    def assoc(name, values):
        return "declare -gA %s=(%s)" % (name, " ".join("[%s]=%s" % (q(k), q(str(v))) for k, v in values.items()))

    hosts = lab.hosts.values()
    return "\n".join([
        "LAB_DIR=%s" % q(lab.dir),
        "LAN_NS=%s" % q(lab.lan_netns),
        "PREFIX_LEN=%d" % lab.prefix_length,
        # Empty, and ADDRESS6 without entries, in an IPv4-only lab.
        "PREFIX6_LEN=%s" % ("" if lab.ipv6_prefix_length is None else "%d" % lab.ipv6_prefix_length),
        "HOSTS=(%s)" % " ".join(q(h.name) for h in hosts),
        "ENGINE_HOSTS=(%s)" % " ".join(q(name) for name in lab.engine_hosts),
        assoc("ADDRESS", {h.name: h.address for h in hosts}),
        assoc("ADDRESS6", lab.addresses6),
        assoc("NETNS", {h.name: h.netns for h in hosts}),
        assoc("PIDFILE", {h.name: h.pidfile for h in hosts}),
    ]) + "\n"


def main(argv):
    if not (len(argv) in (2, 3) and argv[1] in ("shell", "json") or len(argv) == 5 and argv[1] == "twin"):
        sys.stderr.write("usage: %s shell|json [INVENTORY_DIR] | twin INVENTORY_DIR TWIN_DIR NAME\n" % argv[0])
        return 2
    try:
        if argv[1] == "twin":
            twin(*argv[2:])
            return 0
        lab = load(argv[2] if len(argv) == 3 else INVENTORY_DIR)
    except LabInventoryError as exc:
        sys.stderr.write("lab inventory: %s\n" % exc)
        return 1
    sys.stdout.write(as_shell(lab) if argv[1] == "shell" else json.dumps(as_dict(lab), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
