"""tproxy.envoy.ec2_source_dest_check run by Ansible against a moto EC2 server.

Instances have two interfaces each. The state is read back with boto3 at both levels:
the instance attribute and every interface, because moto (unlike AWS) does not mirror the
instance attribute onto the primary interface.
"""

from __future__ import annotations

import pytest

from aws_helpers import run_module

TAG = "tproxy-test-case"


@pytest.fixture
def routers(ec2, ami_id, subnet, unique_tag):
    """Two running instances tagged TAG=unique_tag, each with a second interface at device index 1."""
    ids = []
    for _index in range(2):
        instance = ec2.run_instances(
            ImageId=ami_id,
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": TAG, "Value": unique_tag}]}],
        )["Instances"][0]
        eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
        ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance["InstanceId"], DeviceIndex=1)
        ids.append(instance["InstanceId"])
    return sorted(ids)


def instance_flags(ec2, instance_id):
    return ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck")["SourceDestCheck"][
        "Value"
    ]


def interface_flags(ec2, instance_id):
    """eni id -> SourceDestCheck for every interface attached to the instance (DescribeNetworkInterfaces)."""
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])[
        "NetworkInterfaces"
    ]
    return {e["NetworkInterfaceId"]: e["SourceDestCheck"] for e in enis}


def assert_everywhere(ec2, instance_ids, value):
    for instance_id in instance_ids:
        assert instance_flags(ec2, instance_id) is value, instance_id
        flags = interface_flags(ec2, instance_id)
        assert len(flags) == 2, flags
        assert set(flags.values()) == {value}, flags


def test_check_mode_reports_change_and_changes_nothing(aws_env, ec2, routers):
    result = run_module(aws_env, {"instance_ids": routers, "enabled": False}, "--check", "--diff")
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert [i["instance_id"] for i in result["instances"]] == routers
    assert all(len(i["network_interfaces"]) == 2 for i in result["instances"])
    assert_everywhere(ec2, routers, True)


def test_apply_turns_off_every_interface_then_is_idempotent(aws_env, ec2, routers, unique_tag):
    selection = {"filters": {f"tag:{TAG}": unique_tag}, "enabled": False}
    first = run_module(aws_env, selection, "--diff")
    assert not first.get("failed"), first
    assert first["changed"] is True
    assert_everywhere(ec2, routers, False)
    # The report matches what AWS now says, interface by interface.
    for report in first["instances"]:
        assert report["source_dest_check"] == {"before": True, "after": False, "changed": True}
        assert set(interface_flags(ec2, report["instance_id"])) == {
            n["network_interface_id"] for n in report["network_interfaces"]
        }
        assert [n["device_index"] for n in report["network_interfaces"]] == [0, 1]
    assert set(first["diff"]["before"]) == set(routers)

    second = run_module(aws_env, selection)
    assert not second.get("failed"), second
    assert second["changed"] is False


def test_turning_the_check_back_on(aws_env, ec2, routers):
    assert run_module(aws_env, {"instance_ids": routers, "enabled": False})["changed"] is True
    back_on = run_module(aws_env, {"instance_ids": routers, "enabled": True})
    assert back_on["changed"] is True
    assert_everywhere(ec2, routers, True)
    assert run_module(aws_env, {"instance_ids": routers, "enabled": True})["changed"] is False


def test_instance_attribute_alone_off_still_fixes_every_interface(aws_env, ec2, routers):
    """On moto, ModifyInstanceAttribute leaves the interfaces on: the module must not stop at the instance level."""
    target = routers[0]
    ec2.modify_instance_attribute(InstanceId=target, SourceDestCheck={"Value": False})
    assert set(interface_flags(ec2, target).values()) == {True}

    result = run_module(aws_env, {"instance_ids": [target], "enabled": False})
    assert result["changed"] is True
    [report] = result["instances"]
    assert report["source_dest_check"]["changed"] is False
    assert all(n["changed"] for n in report["network_interfaces"])
    assert_everywhere(ec2, [target], False)


def test_interfaces_alone_off_still_fixes_the_instance_attribute(aws_env, ec2, routers):
    target = routers[0]
    for eni in interface_flags(ec2, target):
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={"Value": False})
    assert instance_flags(ec2, target) is True

    result = run_module(aws_env, {"instance_ids": [target], "enabled": False})
    assert result["changed"] is True
    [report] = result["instances"]
    assert report["source_dest_check"]["changed"] is True
    assert not any(n["changed"] for n in report["network_interfaces"])
    assert_everywhere(ec2, [target], False)


def test_unknown_instance_id(aws_env, routers):
    missing = "i-0123456789abcdef0"
    result = run_module(aws_env, {"instance_ids": [routers[0], missing], "enabled": False})
    assert result["failed"] is True
    assert "Unknown instance id" in result["msg"] and missing in result["msg"]


def test_no_instance_matched(aws_env, routers, unique_tag):
    result = run_module(aws_env, {"filters": {f"tag:{TAG}": f"{unique_tag}-nobody"}, "enabled": False})
    assert result["failed"] is True
    assert "No running or stopped instance matched the filters" in result["msg"]


def test_missing_region(aws_env, routers):
    env = {k: v for k, v in aws_env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    result = run_module(env, {"instance_ids": routers, "enabled": False})
    assert result["failed"] is True
    assert "requires a region" in result["msg"]
