"""playbooks/aws_infra.yml and aws_infra_down.yml against a moto EC2 server.

Up creates the topology (second run changed=0), the inventory finds it, down removes exactly
what up created: resources made beforehand by someone else, even with the same project tag,
survive.
"""

from __future__ import annotations

import json

from aws_helpers import REPO
from aws_helpers import plain
from aws_helpers import run
from aws_helpers import run_playbook
from aws_helpers import tool

UP = REPO / "playbooks" / "aws_infra.yml"
DOWN = REPO / "playbooks" / "aws_infra_down.yml"
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
