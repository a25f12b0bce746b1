"""AccessDenied from a moto server that enforces IAM: the module names the IAM actions it needs.

moto checks every request against IAM once INITIAL_NO_AUTH_ACTION_COUNT requests have been
served; the setup below makes exactly that many with the test's root credentials.
"""

from __future__ import annotations

import json

import pytest

from aws_helpers import client
from aws_helpers import moto_server
from aws_helpers import run_module

IAM_ACTIONS = ("ec2:DescribeInstances", "ec2:ModifyNetworkInterfaceAttribute", "ec2:ModifyInstanceAttribute")
DESCRIBE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"}],
}
SETUP_REQUESTS = 8


@pytest.fixture(scope="module")
def enforcing_moto(tmp_path_factory, aws_env):
    """An instance, and Ansible environments for a user allowed only DescribeInstances and one allowed nothing."""
    with moto_server(tmp_path_factory.mktemp("moto-iam"), INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_REQUESTS)) as url:
        ec2, iam = client("ec2", url), client("iam", url)
        image = ec2.describe_images()["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="describe-only", PolicyDocument=json.dumps(DESCRIBE_ONLY))
        reader = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.create_user(UserName="nobody")
        nobody = iam.create_access_key(UserName="nobody")["AccessKey"]
        # Request 8, the last free one; everything after it is checked against IAM.
        ec2.describe_instances(InstanceIds=[instance])

        def env_for(key):
            env = {k: v for k, v in aws_env.items() if k != "AWS_SESSION_TOKEN"}
            env.update(
                AWS_URL=url,
                AWS_ENDPOINT_URL=url,
                AWS_ACCESS_KEY_ID=key["AccessKeyId"],
                AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
            )
            return env

        yield instance, env_for(reader), env_for(nobody)


def test_denied_modify_names_the_instance_and_the_iam_actions(enforcing_moto):
    instance, reader_env = enforcing_moto[0], enforcing_moto[1]
    result = run_module(reader_env, {"instance_ids": [instance], "enabled": False})
    assert result["failed"] is True
    assert f"Not authorized to change the source/destination check of {instance}" in result["msg"]
    assert all(action in result["msg"] for action in IAM_ACTIONS), result["msg"]


def test_denied_describe_names_the_iam_actions(enforcing_moto):
    instance, nobody_env = enforcing_moto[0], enforcing_moto[2]
    result = run_module(nobody_env, {"instance_ids": [instance], "enabled": False})
    assert result["failed"] is True
    assert "Not authorized to describe the instances" in result["msg"]
    assert all(action in result["msg"] for action in IAM_ACTIONS), result["msg"]
