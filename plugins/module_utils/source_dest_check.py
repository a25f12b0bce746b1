# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read and set the EC2 source/destination check of instances and all their interfaces.

A transparent router receives packets addressed to other hosts; EC2 drops them
unless the check is off on the interface that receives them. AWS keeps the flag
twice: on the instance (mirrored from its primary interface on real AWS) and on
each network interface. We read both, plan per level, and change only what
differs, so a second run changes nothing.
"""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.transformation import ansible_dict_to_boto3_filter_list

# The IAM actions this code calls; named in the AccessDenied message so the
# user knows what to add to the policy.
REQUIRED_IAM_ACTIONS = (
    "ec2:DescribeInstances",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:ModifyInstanceAttribute",
)

ACCESS_DENIED_CODES = frozenset(
    ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess")
)
UNKNOWN_INSTANCE_CODES = frozenset(("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"))

# Instances in these states have no interfaces left to change.
GONE_STATES = frozenset(("shutting-down", "terminated"))


class NoInstanceMatched(Exception):
    """The selection (ids or filters) found no usable instance."""


@AWSRetry.jittered_backoff()
def _describe_instances(client, **params):
    paginator = client.get_paginator("describe_instances")
    return paginator.paginate(**params).build_full_result()["Reservations"]


def find_instances(client, instance_ids=None, filters=None):
    """Return the selected instances (describe_instances dicts), sorted by id.

    Raises NoInstanceMatched when nothing usable is found, and botocore's
    ClientError for unknown ids (AWS answers InvalidInstanceID.*).
    """
    if instance_ids:
        reservations = _describe_instances(client, InstanceIds=list(instance_ids))
    else:
        reservations = _describe_instances(client, Filters=ansible_dict_to_boto3_filter_list(filters))
    instances = [i for r in reservations for i in r["Instances"]]
    live = [i for i in instances if i.get("State", {}).get("Name") not in GONE_STATES]
    if instance_ids:
        gone = sorted(i["InstanceId"] for i in instances if i not in live)
        if gone:
            raise NoInstanceMatched(
                f"Instance(s) {', '.join(gone)} are terminated or shutting down; they have no network interfaces to change"
            )
    if not live:
        raise NoInstanceMatched(f"No running or stopped instance matched the filters {filters!r}")
    return sorted(live, key=lambda i: i["InstanceId"])


def current_state(instance):
    """The flags as AWS reports them: instance level and per interface id."""
    interfaces = sorted(
        instance.get("NetworkInterfaces", []),
        key=lambda n: (n.get("Attachment", {}).get("DeviceIndex", 0), n["NetworkInterfaceId"]),
    )
    return {
        # An instance without the field has the check on (the EC2 default).
        "source_dest_check": instance.get("SourceDestCheck", True),
        "network_interfaces": [
            {
                "network_interface_id": n["NetworkInterfaceId"],
                "device_index": n.get("Attachment", {}).get("DeviceIndex"),
                "source_dest_check": n.get("SourceDestCheck", True),
            }
            for n in interfaces
        ],
    }


def plan_instance(instance, enabled):
    """Compare one instance with the wanted flag: the per-level before/after report."""
    state = current_state(instance)
    interfaces = [
        {
            "network_interface_id": n["network_interface_id"],
            "device_index": n["device_index"],
            "before": n["source_dest_check"],
            "after": enabled,
            "changed": n["source_dest_check"] != enabled,
        }
        for n in state["network_interfaces"]
    ]
    instance_changed = state["source_dest_check"] != enabled
    return {
        "instance_id": instance["InstanceId"],
        "source_dest_check": {"before": state["source_dest_check"], "after": enabled, "changed": instance_changed},
        "network_interfaces": interfaces,
        "changed": instance_changed or any(n["changed"] for n in interfaces),
    }


def apply_plan(client, plan):
    """Make the changes a plan lists. `client` must be a retrying client (module.client(..., retry_decorator=...)).

    Interfaces first: on real AWS, setting the primary interface also sets the
    instance attribute, and setting the instance attribute is harmless if it
    already matches.
    """
    for interface in plan["network_interfaces"]:
        if interface["changed"]:
            client.modify_network_interface_attribute(
                NetworkInterfaceId=interface["network_interface_id"],
                SourceDestCheck={"Value": interface["after"]},
                aws_retry=True,
            )
    if plan["source_dest_check"]["changed"]:
        client.modify_instance_attribute(
            InstanceId=plan["instance_id"],
            SourceDestCheck={"Value": plan["source_dest_check"]["after"]},
            aws_retry=True,
        )


def diff_view(plans, side):
    """One side ('before' or 'after') of --diff: instance id -> flags per level."""
    return {
        p["instance_id"]: {
            "source_dest_check": p["source_dest_check"][side],
            "network_interfaces": {n["network_interface_id"]: n[side] for n in p["network_interfaces"]},
        }
        for p in plans
    }


def aws_error_code(error):
    """The AWS error code of a ClientError (None for other botocore errors)."""
    return getattr(error, "response", {}).get("Error", {}).get("Code")


def access_denied_message(action):
    return (
        f"Not authorized to {action}. The credentials in use need these IAM actions: "
        f"{', '.join(REQUIRED_IAM_ACTIONS)}"
    )
