"""Unit tests for tproxy.envoy.ec2_source_dest_check: AWS answers are stubbed with botocore's Stubber.

The Stubber also fails a test on any call it was not told to expect, which is how
check mode is shown to make no change.
"""

from __future__ import annotations

import json
from unittest import mock

import botocore.session
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import REQUIRED_IAM_ACTIONS
from ansible_collections.tproxy.envoy.plugins.modules import ec2_source_dest_check
from ansible_collections.tproxy.envoy.tests.unit.compat.module_args import patch_module_args

INSTANCE_ID = "i-0123456789abcdef0"
PRIMARY_ENI = "eni-00000000000000001"
SECOND_ENI = "eni-00000000000000002"


def instance(instance_id=INSTANCE_ID, state="running", instance_flag=True, eni_flags=(True, True)):
    """A describe_instances entry with one interface per flag, device index = position."""
    return {
        "InstanceId": instance_id,
        "State": {"Name": state, "Code": 16},
        "SourceDestCheck": instance_flag,
        "NetworkInterfaces": [
            {
                "NetworkInterfaceId": eni_id,
                "SourceDestCheck": flag,
                "Attachment": {"DeviceIndex": index},
            }
            for index, (eni_id, flag) in enumerate(zip((PRIMARY_ENI, SECOND_ENI), eni_flags))
        ],
    }


def reservations(*instances):
    return {"Reservations": [{"ReservationId": "r-0123456789abcdef0", "Instances": list(instances)}]}


@pytest.fixture
def ec2():
    """A real botocore EC2 client whose answers come from a Stubber (no network)."""
    client = botocore.session.get_session().create_client(
        "ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def run_module(args, capsys, client=None):
    """Run main() with `args`; return (exit code, result dict)."""
    args = {"region": "us-east-1", **args}
    patches = []
    if client is not None:
        wrapped = RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff())
        patches.append(mock.patch.object(AnsibleAWSModule, "client", return_value=wrapped))
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        for p in patches:
            p.start()
        try:
            ec2_source_dest_check.main()
        finally:
            for p in patches:
                p.stop()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


# --- error paths -----------------------------------------------------------


@pytest.mark.parametrize("code", ["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"])
def test_unknown_instance_id_is_named(ec2, capsys, code):
    client, stubber = ec2
    stubber.add_client_error("describe_instances", service_error_code=code, service_message="no such id")
    rc, result = run_module({"instance_ids": ["i-0000000000bad0000"], "enabled": False}, capsys, client)
    assert rc == 1
    assert "Unknown instance id" in result["msg"]
    assert "i-0000000000bad0000" in result["msg"]


def test_access_denied_on_describe_lists_iam_actions(ec2, capsys):
    client, stubber = ec2
    stubber.add_client_error("describe_instances", service_error_code="UnauthorizedOperation", http_status_code=403)
    rc, result = run_module({"instance_ids": [INSTANCE_ID], "enabled": False}, capsys, client)
    assert rc == 1
    for action in ("ec2:DescribeInstances", "ec2:ModifyNetworkInterfaceAttribute", "ec2:ModifyInstanceAttribute"):
        assert action in result["msg"]
    assert "describe the instances" in result["msg"]


def test_access_denied_on_modify_lists_iam_actions_and_instance(ec2, capsys):
    client, stubber = ec2
    stubber.add_response("describe_instances", reservations(instance()))
    stubber.add_client_error(
        "modify_network_interface_attribute", service_error_code="AccessDenied", http_status_code=403
    )
    rc, result = run_module({"instance_ids": [INSTANCE_ID], "enabled": False}, capsys, client)
    assert rc == 1
    assert INSTANCE_ID in result["msg"]
    assert all(action in result["msg"] for action in REQUIRED_IAM_ACTIONS)


def test_no_instance_matched_filters(ec2, capsys):
    client, stubber = ec2
    stubber.add_response("describe_instances", {"Reservations": []})
    rc, result = run_module({"filters": {"tag:tproxy-role": "router"}, "enabled": False}, capsys, client)
    assert rc == 1
    assert "No running or stopped instance matched the filters" in result["msg"]
    assert "tproxy-role" in result["msg"]


def test_only_terminated_instances_match_filters(ec2, capsys):
    client, stubber = ec2
    stubber.add_response("describe_instances", reservations(instance(state="terminated")))
    rc, result = run_module({"filters": {"tag:tproxy-role": "router"}, "enabled": False}, capsys, client)
    assert rc == 1
    assert "No running or stopped instance matched" in result["msg"]


def test_terminated_instance_named_by_id(ec2, capsys):
    client, stubber = ec2
    stubber.add_response("describe_instances", reservations(instance(state="terminated")))
    rc, result = run_module({"instance_ids": [INSTANCE_ID], "enabled": False}, capsys, client)
    assert rc == 1
    assert INSTANCE_ID in result["msg"] and "terminated" in result["msg"]


def test_missing_region_is_named(capsys, monkeypatch, tmp_path):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "EC2_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    # No config file to read a region from, and no instance metadata service to ask.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with patch_module_args({"instance_ids": [INSTANCE_ID], "enabled": False}), pytest.raises(SystemExit) as exit_info:
        ec2_source_dest_check.main()
    result = json.loads(capsys.readouterr().out)
    assert exit_info.value.code == 1
    assert "requires a region" in result["msg"]


@pytest.mark.parametrize(
    "args, words",
    [
        ({"enabled": False}, ["one of the following is required", "instance_ids", "filters"]),
        (
            {"enabled": False, "instance_ids": [INSTANCE_ID], "filters": {"tag:a": "b"}},
            ["mutually exclusive", "instance_ids", "filters"],
        ),
        ({"instance_ids": [INSTANCE_ID]}, ["missing required arguments", "enabled"]),
    ],
)
def test_argument_spec_refuses_bad_selection(capsys, args, words):
    rc, result = run_module(args, capsys)
    assert rc == 1
    assert all(word in result["msg"] for word in words)


# --- behaviour -------------------------------------------------------------


def test_check_mode_reports_change_and_calls_no_modify(ec2, capsys):
    client, stubber = ec2
    stubber.add_response("describe_instances", reservations(instance()))
    # No modify_* response is queued: the Stubber would fail on any such call.
    rc, result = run_module(
        {"instance_ids": [INSTANCE_ID], "enabled": False, "_ansible_check_mode": True, "_ansible_diff": True},
        capsys,
        client,
    )
    assert rc == 0
    assert result["changed"] is True
    assert result["diff"]["before"][INSTANCE_ID]["network_interfaces"] == {PRIMARY_ENI: True, SECOND_ENI: True}
    assert result["diff"]["after"][INSTANCE_ID]["network_interfaces"] == {PRIMARY_ENI: False, SECOND_ENI: False}


def test_apply_changes_only_what_differs(ec2, capsys):
    client, stubber = ec2
    # Second interface already off; primary and instance attribute still on.
    stubber.add_response("describe_instances", reservations(instance(eni_flags=(True, False))))
    stubber.add_response(
        "modify_network_interface_attribute",
        {},
        {"NetworkInterfaceId": PRIMARY_ENI, "SourceDestCheck": {"Value": False}},
    )
    stubber.add_response(
        "modify_instance_attribute", {}, {"InstanceId": INSTANCE_ID, "SourceDestCheck": {"Value": False}}
    )
    rc, result = run_module({"instance_ids": [INSTANCE_ID], "enabled": False}, capsys, client)
    assert rc == 0
    assert result["changed"] is True
    [report] = result["instances"]
    assert report["source_dest_check"] == {"before": True, "after": False, "changed": True}
    assert [(n["network_interface_id"], n["before"], n["changed"]) for n in report["network_interfaces"]] == [
        (PRIMARY_ENI, True, True),
        (SECOND_ENI, False, False),
    ]


def test_already_in_state_is_ok(ec2, capsys):
    client, stubber = ec2
    stubber.add_response("describe_instances", reservations(instance(instance_flag=False, eni_flags=(False, False))))
    rc, result = run_module({"instance_ids": [INSTANCE_ID], "enabled": False}, capsys, client)
    assert rc == 0
    assert result["changed"] is False


def test_filters_are_sent_as_ec2_filters(ec2, capsys):
    client, stubber = ec2
    stubber.add_response(
        "describe_instances",
        reservations(instance(instance_flag=True, eni_flags=(True,))),
        {"Filters": [{"Name": "tag:tproxy-role", "Values": ["router"]}]},
    )
    rc, result = run_module({"filters": {"tag:tproxy-role": "router"}, "enabled": True}, capsys, client)
    assert rc == 0
    assert result["changed"] is False
    assert [n["network_interface_id"] for n in result["instances"][0]["network_interfaces"]] == [PRIMARY_ENI]
