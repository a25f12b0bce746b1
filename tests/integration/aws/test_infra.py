"""playbooks/aws_infra.yml and aws_infra_down.yml against a moto EC2 server.

Up creates the topology (second run changed=0), the inventory finds it, down removes exactly
what up created: resources made beforehand by someone else, even with the same project tag,
survive. A fleet (aws_router_count=2) routes through its first-choice router's network interface,
and keepalived's notify hook, run for the second router with the configuration the router role
writes, moves exactly those routes; up again then changes nothing. moto forwards no packets and
checks none of AWS's route rules (README, Using it on AWS).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from aws_helpers import CONTROLLER_GID
from aws_helpers import CONTROLLER_UID
from aws_helpers import REPO
from aws_helpers import plain
from aws_helpers import run
from aws_helpers import run_playbook
from aws_helpers import tool

UP = REPO / "playbooks" / "aws_infra.yml"
DOWN = REPO / "playbooks" / "aws_infra_down.yml"
TAKEOVER = REPO / "plugins" / "module_utils" / "route_takeover.py"
MANAGED_BY = "tproxy.envoy.aws_infra"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def stats(report):
    return report["stats"]["localhost"]


def left_behind(ec2, project):
    """Everything still carrying the up playbook's two tags, by kind."""
    filters = [
        {"Name": "tag:tproxy-project", "Values": [project]},
        {"Name": "tag:tproxy-managed-by", "Values": [MANAGED_BY]},
    ]
    instances = [
        i["InstanceId"]
        for r in ec2.describe_instances(Filters=filters + [{"Name": "instance-state-name", "Values": LIVE_STATES}])[
            "Reservations"
        ]
        for i in r["Instances"]
    ]
    return {
        "instances": instances,
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=filters)["Vpcs"]],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=filters)["Subnets"]],
        "internet gateways": [
            g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=filters)["InternetGateways"]
        ],
        "route tables": [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=filters)["RouteTables"]],
        "security groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=filters)["SecurityGroups"]],
    }


def foreign_resources(ec2, ami_id, project):
    """A VPC with an instance that the down playbook must not touch; one carries our project tag."""
    vpc = ec2.create_vpc(CidrBlock="203.0.113.0/24")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="203.0.113.0/25")["Subnet"]["SubnetId"]
    instance = ec2.run_instances(
        ImageId=ami_id,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "tproxy-project", "Value": project},
                                                  {"Key": "tproxy-role", "Value": "router"}]}
        ],
    )["Instances"][0]["InstanceId"]
    return vpc, subnet, instance


def test_up_twice_then_down_leaves_only_foreign_resources(aws_env, ec2, ami_id, unique_tag):
    env = dict(aws_env, TPROXY_AWS_PROJECT=unique_tag)
    foreign_vpc, foreign_subnet, foreign_instance = foreign_resources(ec2, ami_id, unique_tag)
    settings = ["-e", f"aws_ami_id={ami_id}", "-e", "aws_ssh_cidr=192.0.2.0/24"]

    rc, first = run_playbook(env, UP, *settings)
    assert rc == 0, json.dumps(first)[-3000:]
    assert stats(first)["changed"] > 0

    rc, second = run_playbook(env, UP, *settings)
    assert rc == 0
    changed_tasks = [
        # A meta task (refresh_inventory) has no host result.
        t["task"]["name"] for t in second["plays"][0]["tasks"] if t["hosts"].get("localhost", {}).get("changed")
    ]
    assert stats(second)["changed"] == 0, changed_tasks

    created = left_behind(ec2, unique_tag)
    assert {kind: len(ids) for kind, ids in created.items()} == {
        "instances": 3, "vpcs": 1, "subnets": 1, "internet gateways": 1, "route tables": 1, "security groups": 1,
    }

    # The security group admits SSH from aws_ssh_cidr and port 80 from the subnet only.
    [group] = ec2.describe_security_groups(GroupIds=created["security groups"])["SecurityGroups"]
    rules = sorted((p["FromPort"], p["ToPort"], r["CidrIp"]) for p in group["IpPermissions"] for r in p["IpRanges"])
    assert rules == [(22, 22, "192.0.2.0/24"), (80, 80, "198.51.100.0/25")]

    # The inventory sees the new hosts (and, being by project tag, the foreign router too).
    proc = run([tool("ansible-inventory"), "-i", str(REPO / "inventories/aws/aws_ec2.yml"), "--list"], env)
    listing = plain(json.loads(proc.stdout))
    hostvars = listing["_meta"]["hostvars"]
    routers = [hostvars[h]["instance_id"] for h in listing["routers"]["hosts"]]
    assert len(listing["webservers"]["hosts"]) == 1 and len(listing["clients"]["hosts"]) == 1
    [router] = [r for r in routers if r != foreign_instance]
    # The router's check is off at both levels, the others' are untouched.
    assert ec2.describe_instance_attribute(InstanceId=router, Attribute="sourceDestCheck")["SourceDestCheck"][
        "Value"
    ] is False
    for instance_id in created["instances"]:
        enis = ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
        )["NetworkInterfaces"]
        assert {e["SourceDestCheck"] for e in enis} == {instance_id != router}

    rc, down = run_playbook(env, DOWN)
    assert rc == 0, json.dumps(down)[-3000:]
    assert all(not ids for ids in left_behind(ec2, unique_tag).values()), left_behind(ec2, unique_tag)

    # Someone else's VPC, subnet and instance are still there.
    assert ec2.describe_vpcs(VpcIds=[foreign_vpc])["Vpcs"]
    assert ec2.describe_subnets(SubnetIds=[foreign_subnet])["Subnets"]
    [[instance]] = [r["Instances"] for r in ec2.describe_instances(InstanceIds=[foreign_instance])["Reservations"]]
    assert instance["State"]["Name"] == "running"

    rc, again = run_playbook(env, DOWN)
    assert rc == 0 and stats(again)["changed"] == 0


FLEET_SUBNETS = {"aws_web_subnet_cidr": "198.51.100.128/26", "aws_router_subnet_cidr": "198.51.100.192/26"}
CLIENT_SUBNET = "198.51.100.0/25"


def fleet_inventory(directory, **group_vars):
    """The AWS inventory in a directory of its own, with group_vars/routers.yml: a group with a virtual address in
    the routers' subnet (keepalived), clients' addresses kept (so the web server's table needs return routes)."""
    (directory / "group_vars").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "inventories" / "aws" / "aws_ec2.yml", directory / "aws_ec2.yml")
    settings = {"router_virtual_address": "198.51.100.254", "router_vrrp_id": 51,
                "router_preserve_client_address": True, **group_vars}
    (directory / "group_vars" / "routers.yml").write_text("---\n" + json.dumps(settings) + "\n")
    return directory


def named_tables(ec2, project):
    """Name tag -> {destination: target} of every route but the local one, of the project's route tables."""
    found = ec2.describe_route_tables(Filters=[{"Name": "tag:tproxy-project", "Values": [project]}])["RouteTables"]
    return {next(t["Value"] for t in table["Tags"] if t["Key"] == "Name"): all_routes(table) for table in found}


def all_routes(table):
    return {(r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock")):
            (r.get("NetworkInterfaceId") or r.get("GatewayId")) for r in table["Routes"] if r.get("GatewayId") != "local"}


def every_route(ec2):
    """Every route of every route table on the server, by table id: what a takeover may change, and may not."""
    return {t["RouteTableId"]: all_routes(t) for t in ec2.describe_route_tables()["RouteTables"]}


def task_msg(report, name):
    [result] = [t["hosts"]["localhost"] for t in report["plays"][0]["tasks"] if t["task"]["name"] == name]
    return result["msg"]


def render_takeover_config(env, inventory, router, out):
    """The route takeover's configuration as the router role writes it for ``router`` of this inventory: its own
    template (aws-takeover.json.j2), its own variables (the topology model) and defaults."""
    out.parent.mkdir(mode=0o755, exist_ok=True)
    playbook = out.parent / "render-takeover.yml"
    playbook.write_text(f"""---
- name: Render the route takeover's configuration as the router role does
  hosts: "{router}"
  gather_facts: false
  vars_files:
    - {REPO}/roles/router/vars/main.yml
  tasks:
    - name: Read the router role's defaults
      ansible.builtin.include_vars:
        file: {REPO}/roles/router/defaults/main.yml
        name: __defaults
    - name: Write the configuration
      ansible.builtin.template:
        src: {REPO}/roles/router/templates/aws-takeover.json.j2
        dest: {out}
        mode: "0644"
      # Written on the controller, with the router's variables.
      delegate_to: localhost
      vars:
        router_fleet_aws_region: "{{{{ __defaults.router_fleet_aws_region }}}}"
""")
    if os.geteuid() == 0:
        os.chown(out.parent, CONTROLLER_UID, CONTROLLER_GID)
    # A module's temporary files: for an inventory host (not the implicit localhost) Ansible takes ~ from the
    # account's passwd entry, which the tests' account does not own.
    rc, report = run_playbook(dict(env, ANSIBLE_REMOTE_TMP=str(out.parent / "tmp")), playbook, inventories=(inventory,))
    assert rc == 0, json.dumps(report)[-3000:]
    return json.loads(out.read_text())


def test_a_fleet_of_two_routers_routes_through_the_first_choice_and_fails_over(aws_env, ec2, ami_id, unique_tag, tmp_path):
    env = dict(aws_env, TPROXY_AWS_PROJECT=unique_tag)
    inventory = fleet_inventory(tmp_path / "aws")
    foreign_vpc, foreign_subnet, foreign_instance = foreign_resources(ec2, ami_id, "someone-else")
    foreign_table = ec2.create_route_table(VpcId=foreign_vpc)["RouteTable"]["RouteTableId"]
    foreign_eni = ec2.create_network_interface(SubnetId=foreign_subnet)["NetworkInterface"]["NetworkInterfaceId"]
    ec2.create_route(RouteTableId=foreign_table, DestinationCidrBlock="192.0.2.0/24", NetworkInterfaceId=foreign_eni)
    settings = ["-e", f"aws_ami_id={ami_id}", "-e", "aws_ssh_cidr=192.0.2.0/24", "-e", "aws_router_count=2",
                *[arg for key, value in FLEET_SUBNETS.items() for arg in ("-e", f"{key}={value}")]]

    rc, first = run_playbook(env, UP, *settings, inventories=(inventory,))
    assert rc == 0, json.dumps(first)[-3000:]
    created = left_behind(ec2, unique_tag)
    assert {kind: len(ids) for kind, ids in created.items()} == {
        "instances": 4, "vpcs": 1, "subnets": 3, "internet gateways": 1, "route tables": 3, "security groups": 1,
    }

    # Both routers are in the inventory's routers; the first in inventory order has the highest priority.
    proc = run([tool("ansible-inventory"), "-i", str(inventory), "--list"], env)
    listing = plain(json.loads(proc.stdout))
    hostvars = listing["_meta"]["hostvars"]
    routers = listing["routers"]["hosts"]
    assert len(routers) == 2 and len(listing["clients"]["hosts"]) == 1 == len(listing["webservers"]["hosts"])
    eni = {h: next(n["network_interface_id"] for n in hostvars[h]["network_interfaces"]
                   if n["attachment"]["device_index"] == 0) for h in routers}
    first_choice, second = (eni[h] for h in routers)
    assert {hostvars[h]["subnet_id"] for h in routers} == {
        s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["198.51.100.192/26"]},
                                                             {"Name": "tag:tproxy-project", "Values": [unique_tag]}])["Subnets"]}
    # The check is off on both routers (instance and interface), on nobody else.
    for instance_id in created["instances"]:
        is_router = instance_id in {hostvars[h]["instance_id"] for h in routers}
        assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck")[
            "SourceDestCheck"]["Value"] is not is_router
        enis = ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["NetworkInterfaces"]
        assert {e["SourceDestCheck"] for e in enis} == {not is_router}
    # The routers hear each other (VRRP, unicast, protocol 112: every protocol from their subnet) and the web
    # server hears them.
    [group] = ec2.describe_security_groups(GroupIds=created["security groups"])["SecurityGroups"]
    rules = sorted((p["IpProtocol"], p.get("FromPort"), r["CidrIp"]) for p in group["IpPermissions"] for r in p["IpRanges"])
    assert rules == [("-1", None, "198.51.100.192/26"), ("tcp", 22, "192.0.2.0/24"), ("tcp", 80, CLIENT_SUBNET),
                     ("tcp", 80, "198.51.100.192/26")]

    tables = named_tables(ec2, unique_tag)
    igw = tables[f"{unique_tag}-rtb"]["0.0.0.0/0"]
    # The clients' subnet sends the web server's subnet to the first-choice router, the web server's subnet the
    # clients' (router_preserve_client_address); the routers' own table has neither.
    assert tables == {f"{unique_tag}-rtb": {"0.0.0.0/0": igw, "198.51.100.128/26": first_choice},
                      f"{unique_tag}-web-rtb": {"0.0.0.0/0": igw, CLIENT_SUBNET: first_choice},
                      f"{unique_tag}-router-rtb": {"0.0.0.0/0": igw}}
    ids = {next(t["Value"] for t in table["Tags"] if t["Key"] == "Name"): table["RouteTableId"] for table in
           ec2.describe_route_tables(Filters=[{"Name": "tag:tproxy-project", "Values": [unique_tag]}])["RouteTables"]}
    shown = task_msg(first, "Show router_fleet_aws_route_tables for the inventory")
    assert shown == {"router_fleet_aws_route_tables": {"routers": [ids[f"{unique_tag}-rtb"], ids[f"{unique_tag}-web-rtb"]]}}

    # Someone else's route in our table.
    ec2.create_route(RouteTableId=ids[f"{unique_tag}-rtb"], DestinationCidrBlock="192.0.2.128/25", GatewayId=igw)

    # The second router takes the group over: keepalived's notify hook runs the takeover with the configuration
    # the router role writes for it, with the route tables the playbook showed in the inventory.
    fleet_inventory(inventory, **shown)
    config = render_takeover_config(env, inventory, routers[1], tmp_path / "out" / "aws-takeover.json")
    assert config["own_interface"] == second
    assert config["groups"] == {"routers": {"route_table_ids": shown["router_fleet_aws_route_tables"]["routers"],
                                            "peer_interfaces": [first_choice]}}
    before = every_route(ec2)
    hook = subprocess.run([sys.executable, str(TAKEOVER), "--config", str(tmp_path / "out" / "aws-takeover.json"),
                           "--group", "routers"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert hook.returncode == 0, hook.stdout + hook.stderr
    after = every_route(ec2)
    moved = {(table, dest): (before[table][dest], target) for table, routes in after.items()
             for dest, target in routes.items() if before[table].get(dest) != target}
    assert moved == {(ids[f"{unique_tag}-rtb"], "198.51.100.128/26"): (first_choice, second),
                     (ids[f"{unique_tag}-web-rtb"], CLIENT_SUBNET): (first_choice, second)}
    assert {t: set(r) for t, r in after.items()} == {t: set(r) for t, r in before.items()}

    # Up again after the failover: nothing changes, the routes stay with the router that holds the group.
    rc, again = run_playbook(env, UP, *settings, inventories=(inventory,))
    assert rc == 0, json.dumps(again)[-3000:]
    assert stats(again)["changed"] == 0, [t["task"]["name"] for t in again["plays"][0]["tasks"]
                                          if t["hosts"].get("localhost", {}).get("changed")]
    assert every_route(ec2) == after

    rc, down = run_playbook(env, DOWN)
    assert rc == 0, json.dumps(down)[-3000:]
    assert all(not ids for ids in left_behind(ec2, unique_tag).values()), left_behind(ec2, unique_tag)
    assert every_route(ec2)[foreign_table] == {"192.0.2.0/24": foreign_eni}
    [[instance]] = [r["Instances"] for r in ec2.describe_instances(InstanceIds=[foreign_instance])["Reservations"]]
    assert instance["State"]["Name"] == "running"


@pytest.mark.parametrize(("extra", "named"), [
    ({"aws_router_count": 0}, ["aws_router_count"]),
    ({"aws_router_count": "two"}, ["aws_router_count"]),
    ({"aws_router_count": 2}, ["aws_router_subnet_cidr", "aws_web_subnet_cidr"]),
    ({"aws_router_count": 2, "aws_router_subnet_cidr": "198.51.100.192/26"}, ["aws_web_subnet_cidr, empty"]),
    ({"aws_router_count": 2, **FLEET_SUBNETS, "aws_router_subnet_cidr": "198.51.100.0/25"}, ["aws_router_subnet_cidr"]),
    ({"aws_instances": [{"name": "r", "role": "router"}]}, ["aws_instances", "aws_router_count"]),
])
def test_bad_fleet_settings_stop_before_anything_is_created(aws_env, ec2, ami_id, unique_tag, extra, named):
    env = dict(aws_env, TPROXY_AWS_PROJECT=unique_tag)
    rc, report = run_playbook(env, UP, "-e", f"aws_ami_id={ami_id}", "-e", "aws_ssh_cidr=192.0.2.0/24",
                              "-e", json.dumps(extra))
    assert rc != 0
    failed = [t["hosts"]["localhost"] for t in report["plays"][0]["tasks"] if t["hosts"]["localhost"].get("failed")]
    assert len(failed) == 1 and all(name in failed[0]["msg"] for name in named), failed
    assert all(not ids for ids in left_behind(ec2, unique_tag).values())
    assert not ec2.describe_vpcs(Filters=[{"Name": "tag:tproxy-project", "Values": [unique_tag]}])["Vpcs"]
