"""playbooks/tasks/aws_source_dest_check.yml, included from a play on `routers` of the AWS
inventory with `become: true` (as site.yml and teardown.yml do), against a moto EC2 server.

Ansible runs as an ordinary account (aws_helpers.as_controller) and the inventory also sets
`ansible_become: true` for every host, as many users' group_vars/all.yml do: the tasks, which run on
the controller, must still not become root there (sudo's environment reset would also drop the AWS
credentials and endpoint)."""

from __future__ import annotations

import pytest

from aws_helpers import REPO
from aws_helpers import run
from aws_helpers import tool

TASKS = REPO / "playbooks" / "tasks" / "aws_source_dest_check.yml"
INVENTORY = REPO / "inventories" / "aws" / "aws_ec2.yml"


@pytest.fixture
def project(ec2, ami_id, subnet, unique_tag):
    """A router with two interfaces and a web server, tagged as project `unique_tag`."""
    ids = {}
    for role in ("router", "webserver"):
        tags = [{"Key": "tproxy-project", "Value": unique_tag}, {"Key": "tproxy-role", "Value": role}]
        ids[role] = ec2.run_instances(
            ImageId=ami_id,
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"][0]["InstanceId"]
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=ids["router"], DeviceIndex=1)
    return ids


@pytest.fixture
def include_play(tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(
        "- name: Set the routers' check\n"
        "  hosts: routers\n"
        "  become: true\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Include the task file\n"
        f"      ansible.builtin.include_tasks: {TASKS}\n"
    )
    return play


def flags(ec2, instance_id):
    """{instance attribute} | {every interface's flag}: one element when all levels agree."""
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])
    values = {e["SourceDestCheck"] for e in enis["NetworkInterfaces"]}
    attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck")
    return values | {attribute["SourceDestCheck"]["Value"]}


def become_everywhere(directory):
    """An inventory source that asks for become on every host, as a user's group_vars/all.yml may."""
    path = directory / "become.yml"
    path.write_text("---\nall:\n  vars:\n    ansible_become: true\n")
    return path


def play(aws_env, project_tag, playbook, *extra_vars):
    env = dict(aws_env, TPROXY_AWS_PROJECT=project_tag, ANSIBLE_STDOUT_CALLBACK="default")
    argv = [tool("ansible-playbook"), "-i", str(INVENTORY), "-i", str(become_everywhere(playbook.parent)),
            str(playbook)]
    for assignment in extra_vars:
        argv += ["-e", assignment]
    proc = run(argv, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [recap] = [line for line in proc.stdout.splitlines() if " changed=" in line]
    return int(recap.split(" changed=")[1].split()[0]), proc.stdout


def test_off_for_the_router_only_then_back_on(aws_env, ec2, project, unique_tag, include_play):
    changed, _out = play(aws_env, unique_tag, include_play, '{"aws_source_dest_check_enabled": false}')
    assert changed == 1
    assert flags(ec2, project["router"]) == {False}
    assert flags(ec2, project["webserver"]) == {True}

    changed, _out = play(aws_env, unique_tag, include_play, '{"aws_source_dest_check_enabled": false}')
    assert changed == 0

    # Teardown with the keep flag leaves the check off.
    changed, out = play(
        aws_env,
        unique_tag,
        include_play,
        '{"aws_source_dest_check_enabled": true, "aws_keep_source_dest_check_off": true}',
    )
    assert changed == 0 and "skipping" in out
    assert flags(ec2, project["router"]) == {False}

    changed, _out = play(aws_env, unique_tag, include_play, '{"aws_source_dest_check_enabled": true}')
    assert changed == 1
    assert flags(ec2, project["router"]) == {True}


def test_missing_request_stops_with_its_name(aws_env, project, unique_tag, include_play):
    env = dict(aws_env, TPROXY_AWS_PROJECT=unique_tag, ANSIBLE_STDOUT_CALLBACK="default")
    proc = run([tool("ansible-playbook"), "-i", str(INVENTORY), str(include_play)], env)
    assert proc.returncode != 0
    assert "aws_source_dest_check_enabled must be set" in proc.stdout + proc.stderr
