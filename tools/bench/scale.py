"""The control path at scale: site.yml and teardown.yml against labs larger than the regular one.

Only one lab exists at a time on the machine (tools/lab/lab.sh `down` removes the cgroup tree and the
lab directory every lab shares), so measure() takes the regular lab down (teardown.yml, lab.sh down),
builds one larger lab holding every layout's hosts (LAB_INVENTORY=DIR tools/lab/lab.sh up), and runs,
for each layout in turn, with an inventory of that layout's hosts only (the others sit idle):
site.yml cold, site.yml warm (once per forks value), verify.yml (must pass; not part of the table)
and teardown.yml. Then it removes the larger lab and brings the regular lab back up and converges
it if it was there before.

The generated inventories are the lab inventory with each group's one host repeated: `client` at
192.0.2.10 becomes client1..client20 at 192.0.2.11..30 (and 2001:db8::11..30), `router` at
192.0.2.100 becomes router1..router5 at 192.0.2.101..105; a layout takes the first hosts of each
group; a group of one in every layout keeps its host as it is (`web`). Everything else (all's
variables, each group's, group_vars/) is the lab's.
"""

import copy
import ipaddress
import os
import shutil

import yaml

import control
import lab

inventory = lab.inventory  # tools/lab/inventory.py, which lab.sh reads too
GROUPS = ("routers", "webservers", "clients")
# (key, label, hosts per group, forks values for the warm run: the first is used for every run)
LAYOUTS = (
    {"key": "clients20", "label": "1 router, 1 web server, 20 clients",
     "counts": {"routers": 1, "webservers": 1, "clients": 20}, "forks": (None, 25)},
    {"key": "routers5", "label": "5 routers, 1 web server, 1 client",
     "counts": {"routers": 5, "webservers": 1, "clients": 1}, "forks": (None,)},
)
IPV6_ADDRESS = inventory.IPV6_ADDRESS


def _offset(address, index, version):
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return str(cls(address) + index)


def _address6(template6, template4, address4, index):
    """The IPv6 address of a repeated host: the lab writes the IPv4 address's last number at the end of
    the IPv6 one (192.0.2.10, 2001:db8::10); kept so (192.0.2.30, 2001:db8::30), else the offset."""
    last, new_last = template4.rsplit(".", 1)[1], address4.rsplit(".", 1)[1]
    if template6.endswith(":" + last):
        return str(ipaddress.IPv6Address(template6[:-len(last)] + new_last))
    return _offset(template6, index, 6)


def scaled_hosts(template_name, template_vars, count):
    """{name: vars} of `count` hosts made from one: itself for 1, else NAME1..NAMEn at its
    addresses + 1..n (IPv4 and, if it has one, IPv6)."""
    if count == 1:
        return {template_name: copy.deepcopy(template_vars)}
    hosts = {}
    for index in range(1, count + 1):
        host = copy.deepcopy(template_vars)
        host["ansible_host"] = _offset(template_vars["ansible_host"], index, 4)
        if template_vars.get(IPV6_ADDRESS):
            host[IPV6_ADDRESS] = _address6(str(template_vars[IPV6_ADDRESS]), str(template_vars["ansible_host"]),
                                           host["ansible_host"], index)
        hosts[f"{template_name}{index}"] = host
    return hosts


def pool_of(layouts):
    """The hosts per group that every layout's hosts are taken from: the largest count."""
    return {group: max(lay["counts"].get(group, 1) for lay in layouts) for group in GROUPS}


def scaled_inventory(source, counts, pool=None):
    """The inventory document (hosts.yml's content) of the lab in `source` with the first
    counts[group] hosts of pool[group] (default: counts) in each group."""
    pool = pool or counts
    with open(os.path.join(source, "hosts.yml"), encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    children = doc["all"]["children"]
    unknown = set(counts) - set(children)
    if unknown:
        raise ValueError(f"no group {', '.join(sorted(unknown))} in {source}")
    for group, count in counts.items():
        members = children[group].get("hosts") or {}
        if len(members) != 1:
            raise ValueError(f"{source}: group {group} must have one host to repeat, not {len(members)}")
        if not 1 <= count <= pool.get(group, count):
            raise ValueError(f"{group}: 1 to {pool.get(group, count)} hosts, not {count}")
        (name, variables), = members.items()
        hosts = scaled_hosts(name, variables or {}, pool.get(group, count))
        children[group]["hosts"] = dict(list(hosts.items())[:count])
    return doc


def write_inventory(dest, counts, source=inventory.INVENTORY_DIR, pool=None):
    """Write the scaled inventory into the directory dest (hosts.yml and a copy of source's
    group_vars); returns it checked by tools/lab/inventory.py (a Lab), as lab.sh will read it."""
    source = str(source)
    if os.path.isdir(os.path.join(source, "host_vars")):
        raise ValueError(f"{source} has host_vars, which a scaled inventory cannot repeat")
    os.makedirs(dest, exist_ok=True)
    doc = scaled_inventory(source, counts, pool)
    with open(os.path.join(dest, "hosts.yml"), "w", encoding="utf-8") as f:
        f.write("---\n# Generated by tools/bench/scale.py from the lab inventory: "
                + ", ".join(f"{g}: {n}" for g, n in counts.items()) + ".\n")
        yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=False)
    if os.path.isdir(os.path.join(source, "group_vars")):
        shutil.copytree(os.path.join(source, "group_vars"), os.path.join(dest, "group_vars"), dirs_exist_ok=True)
    built = inventory.load(dest)
    want = sum(counts.values())
    if len(built.hosts) != want:
        raise ValueError(f"{dest}: {len(built.hosts)} hosts, not {want}")
    return built


def lab_present(lab_dir=lab.LAB_DIR):
    return os.path.isdir(lab_dir)


def measure(log, workdir, layouts=LAYOUTS):
    """Each layout's timings; the regular lab is taken down first and restored at the end."""
    steps, problems = [], []
    forks = control.configured_forks()

    def step(result, layout=None, hosts=None):
        result.update(layout=layout, hosts=hosts if hosts is not None else result.get("hosts"))
        steps.append(result)
        extra = (f", forks {result['forks']}, controller peak {result['peak_pss_mib']} MiB"
                 if "peak_pss_mib" in result else "")
        log(f"scale: {result['name']}: {result['seconds']} s ({result['recap']}{extra})")
        if result["rc"] != 0:
            problems.append(f"scale: {result['name']} failed:\n{result['tail']}")
        return result["rc"] == 0

    was_there = lab_present()
    regular_hosts = len(inventory.load().hosts)
    pool = pool_of(layouts)
    inventories = {"pool": os.path.join(workdir, "scale-lab")}
    try:
        write_inventory(inventories["pool"], pool, pool=pool)
        for layout in layouts:
            inventories[layout["key"]] = os.path.join(workdir, f"scale-{layout['key']}")
            write_inventory(inventories[layout["key"]], layout["counts"], pool=pool)
    except (ValueError, OSError, inventory.LabInventoryError) as exc:
        problems.append(f"scale: cannot write the inventories: {exc}")
        return {"steps": steps, "problems": problems, "forks": forks}
    try:
        if was_there:
            step(control.playbook("teardown.yml", label="teardown.yml (the lab, before the larger lab)"),
                 "lab", regular_hosts)
            if not step(control.lab_script("down", label="tools/lab/lab.sh down (the lab)"), "lab", regular_hosts):
                return {"steps": steps, "problems": problems, "forks": forks}
        try:
            if step(control.lab_script("up", inventories["pool"], label="tools/lab/lab.sh up (the larger lab)"),
                    "pool", sum(pool.values())):
                for layout in layouts:
                    _layout(layout, inventories[layout["key"]], step, problems)
        finally:
            step(control.lab_script("down", inventories["pool"], label="tools/lab/lab.sh down (the larger lab)"),
                 "pool", sum(pool.values()))
    finally:
        if was_there:
            # The lab as it was: up and converged (verify.yml checks it).
            if step(control.lab_script("up", label="tools/lab/lab.sh up (the lab, no lab)"), "lab", regular_hosts):
                if step(control.playbook("site.yml", label="site.yml cold (the lab, new)"), "lab"):
                    step(control.playbook("verify.yml", label="verify.yml (the lab)"), "lab")
    return {"steps": steps, "problems": problems, "forks": forks, "pool": pool,
            "layouts": [{"key": lay["key"], "label": lay["label"], "counts": lay["counts"],
                         "hosts": sum(lay["counts"].values())} for lay in layouts]}


def _layout(layout, inv, step, problems):
    """site.yml cold, warm (per forks value), verify.yml, teardown.yml with the layout's inventory."""
    key = layout["key"]
    first = layout["forks"][0]
    if not step(control.playbook("site.yml", label=f"site.yml cold ({key})", inventory=inv, forks=first,
                                 kind="cold"), key):
        return
    for forks in layout["forks"]:
        warm = control.playbook("site.yml", label=f"site.yml warm ({key}, forks {forks or 'ansible.cfg'})",
                                inventory=inv, forks=forks, kind="warm")
        if step(warm, key) and warm["changed"]:
            problems.append(f"scale: {warm['name']} reported changed={warm['changed']}")
    step(control.playbook("verify.yml", label=f"verify.yml ({key})", inventory=inv, forks=first), key)
    step(control.playbook("teardown.yml", label=f"teardown.yml ({key})", inventory=inv, forks=first,
                          kind="teardown"), key)
