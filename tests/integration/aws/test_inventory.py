"""inventories/aws/aws_ec2.yml against a moto EC2 server: groups by the tproxy-role tag,
addresses by aws_connect_via, and only running instances of the project."""

from __future__ import annotations

import json

import pytest

from aws_helpers import REPO
from aws_helpers import plain
from aws_helpers import run
from aws_helpers import tool

INVENTORY = REPO / "inventories" / "aws" / "aws_ec2.yml"
ROLES = {"router": "routers", "webserver": "webservers", "client": "clients"}


@pytest.fixture
def topology(ec2, ami_id, subnet, unique_tag):
    """One instance per role under project `unique_tag`, plus instances that must stay out."""
    ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})

    def launch(tags):
        instance = ec2.run_instances(
            ImageId=ami_id,
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ],
        )["Instances"][0]
        return instance["InstanceId"]

    members = {role: launch({"Name": f"{unique_tag}-{role}", "tproxy-project": unique_tag, "tproxy-role": role})
               for role in ROLES}
    outsiders = {
        "other project": launch({"tproxy-project": f"{unique_tag}-other", "tproxy-role": "router"}),
        "stopped": launch({"tproxy-project": unique_tag, "tproxy-role": "router"}),
    }
    ec2.stop_instances(InstanceIds=[outsiders["stopped"]])
    return members, outsiders


def inventory(aws_env, project, connect_via=None):
    env = dict(aws_env, TPROXY_AWS_PROJECT=project)
    if connect_via:
        env["TPROXY_AWS_CONNECT_VIA"] = connect_via
    proc = run([tool("ansible-inventory"), "-i", str(INVENTORY), "--list"], env)
    assert proc.returncode == 0, proc.stderr
    return plain(json.loads(proc.stdout))


def host_of(listing, instance_id):
    [name] = [h for h, v in listing["_meta"]["hostvars"].items() if v.get("instance_id") == instance_id]
    return name


def test_hosts_land_in_their_groups(aws_env, ec2, topology, unique_tag):
    members, outsiders = topology
    listing = inventory(aws_env, unique_tag)
    hostvars = listing["_meta"]["hostvars"]
    assert sorted(v["instance_id"] for v in hostvars.values()) == sorted(members.values())
    for role, group in ROLES.items():
        assert listing[group]["hosts"] == [host_of(listing, members[role])]
    described = {
        i["InstanceId"]: i for r in ec2.describe_instances(InstanceIds=list(members.values()))["Reservations"]
        for i in r["Instances"]
    }
    for instance_id, instance in described.items():
        host = hostvars[host_of(listing, instance_id)]
        # The topology address the roles compute client routes from.
        assert host["private_ip_address"] == instance["PrivateIpAddress"]
        assert host["private_ip_address"].startswith("198.51.100.")
        # Default: connect to the public address.
        assert host["ansible_host"] == instance["PublicIpAddress"]
        # group_vars/all.yml rides along with the inventory.
        assert host["router_envoy_image"] == "envoyproxy/envoy:v1.40.0"
        assert host["webserver_image"] == "mccutchen/go-httpbin:v2.15.0"


@pytest.mark.parametrize("connect_via, field", [("private_ip", "private_ip_address"), ("ssm", "instance_id")])
def test_connect_via_chooses_ansible_host(aws_env, topology, unique_tag, connect_via, field):
    members = topology[0]
    listing = inventory(aws_env, unique_tag, connect_via)
    for instance_id in members.values():
        host = listing["_meta"]["hostvars"][host_of(listing, instance_id)]
        assert host["ansible_host"] == host[field]


def test_misspelt_connect_via_fails(aws_env, topology, unique_tag):
    env = dict(aws_env, TPROXY_AWS_PROJECT=unique_tag, TPROXY_AWS_CONNECT_VIA="public-ip")
    proc = run([tool("ansible-inventory"), "-i", str(INVENTORY), "--list"], env)
    assert "Could not set ansible_host" in proc.stderr
    assert json.loads(proc.stdout or "{}").get("_meta", {}).get("hostvars", {}) == {}
