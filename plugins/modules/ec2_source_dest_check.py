#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_source_dest_check
short_description: Turn the EC2 source/destination check off or on for instances and all their interfaces
version_added: 0.1.0
description:
  - A host that forwards packets addressed to other hosts (a router, a NAT or a transparent proxy)
    only receives them on EC2 when the source/destination check is off.
  - This module sets the check on B(every) network interface attached to each selected instance, not
    only the primary one, and on the instance attribute as well.
  - It reads the current values first and changes only those that differ, so a second run reports no change.
  - Instances that are terminated or shutting down are ignored when selected by O(filters), and are an
    error when named in O(instance_ids).
  - "IAM actions used: C(ec2:DescribeInstances), C(ec2:ModifyNetworkInterfaceAttribute),
    C(ec2:ModifyInstanceAttribute)."
author:
  - tproxy.envoy contributors (@tproxy)
options:
  instance_ids:
    description:
      - IDs of the instances to change.
      - Mutually exclusive with O(filters); one of the two is required.
    type: list
    elements: str
  filters:
    description:
      - 'Select the instances with C(DescribeInstances) filters, for example V({"tag:tproxy-role": "router"}).'
      - See U(https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html) for the filter names.
      - It is an error when no running, pending or stopped instance matches.
      - Mutually exclusive with O(instance_ids); one of the two is required.
    type: dict
  enabled:
    description:
      - The wanted state of the check.
      - V(false) turns the check off, which a router needs; V(true) restores the EC2 default.
    type: bool
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - tproxy.envoy.aws
attributes:
  check_mode:
    support: full
    details: Reads the current values and reports, per instance and interface, what would change.
  diff_mode:
    support: full
    details: Before and after, per instance, of the instance attribute and of each interface's flag.
  platform:
    platforms: posix
    details: Runs where boto3 is installed and the EC2 API is reachable, usually the controller (C(delegate_to) C(localhost)).
notes:
  - On AWS the instance attribute mirrors the primary interface; some EC2 emulators keep them apart,
    so both levels are read and set.
seealso:
  - module: amazon.aws.ec2_instance
  - module: amazon.aws.ec2_eni
"""

EXAMPLES = r"""
- name: Turn the source/destination check off on the routers
  tproxy.envoy.ec2_source_dest_check:
    region: eu-west-1
    filters:
      "tag:tproxy-role": router
      "tag:tproxy-project": tproxy-envoy
    enabled: false

- name: Turn the check back on for one instance, by id
  tproxy.envoy.ec2_source_dest_check:
    instance_ids:
      - i-0123456789abcdef0
    enabled: true
  delegate_to: localhost
"""

RETURN = r"""
instances:
  description: One entry per selected instance, with the check before and after at each level.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance ID.
      type: str
      sample: i-0123456789abcdef0
    changed:
      description: Whether anything on this instance was (or, in check mode, would be) changed.
      type: bool
      sample: true
    source_dest_check:
      description: The instance attribute.
      type: dict
      contains:
        before:
          description: Value read before the change.
          type: bool
          sample: true
        after:
          description: Value after the change.
          type: bool
          sample: false
        changed:
          description: Whether this attribute differed from the wanted value.
          type: bool
          sample: true
    network_interfaces:
      description: Every network interface attached to the instance, ordered by device index.
      type: list
      elements: dict
      contains:
        network_interface_id:
          description: The interface ID.
          type: str
          sample: eni-0123456789abcdef0
        device_index:
          description: Where the interface is attached (0 is the primary interface).
          type: int
          sample: 0
        before:
          description: Value read before the change.
          type: bool
          sample: true
        after:
          description: Value after the change.
          type: bool
          sample: false
        changed:
          description: Whether this interface differed from the wanted value.
          type: bool
          sample: true
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore itself

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import ACCESS_DENIED_CODES
from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import UNKNOWN_INSTANCE_CODES
from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import NoInstanceMatched
from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import access_denied_message
from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import aws_error_code
from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import apply_plan
from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import diff_view
from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import find_instances
from ansible_collections.tproxy.envoy.plugins.module_utils.source_dest_check import plan_instance


def fail_for(module, error, action):
    """Turn an AWS error into a message that names its cause."""
    code = aws_error_code(error)
    if code in UNKNOWN_INSTANCE_CODES:
        module.fail_json_aws(
            error, msg=f"Unknown instance id in {module.params['instance_ids']} (check the id and the region)"
        )
    if code in ACCESS_DENIED_CODES:
        module.fail_json_aws(error, msg=access_denied_message(action))
    module.fail_json_aws(error, msg=f"Failed to {action}")


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            instance_ids=dict(type="list", elements="str"),
            filters=dict(type="dict"),
            enabled=dict(type="bool", required=True),
        ),
        mutually_exclusive=[("instance_ids", "filters")],
        required_one_of=[("instance_ids", "filters")],
        supports_check_mode=True,
    )
    enabled = module.params["enabled"]
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())

    try:
        instances = find_instances(client, module.params["instance_ids"], module.params["filters"])
    except NoInstanceMatched as e:
        module.fail_json(msg=str(e))
    except (ClientError, BotoCoreError) as e:
        fail_for(module, e, "describe the instances")

    plans = [plan_instance(instance, enabled) for instance in instances]
    if not module.check_mode:
        for plan in plans:
            if not plan["changed"]:
                continue
            try:
                apply_plan(client, plan)
            except (ClientError, BotoCoreError) as e:
                fail_for(module, e, f"change the source/destination check of {plan['instance_id']}")

    result = dict(changed=any(p["changed"] for p in plans), instances=plans)
    if module._diff:
        result["diff"] = dict(before=diff_view(plans, "before"), after=diff_view(plans, "after"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
