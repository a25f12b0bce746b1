#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_route_takeover
short_description: Point the route table entries that name a fleet router's peers at its own network interface
version_added: 0.1.0
description:
  - In a VPC a router fleet's address cannot move by ARP; the route tables decide which instance gets the
    clients' packets. The router that holds a group's address takes over every route of O(route_table_ids)
    whose target is one of O(peer_interfaces), with C(ReplaceRoute) towards O(own_interface) (the pattern of
    AWS's HA NAT instances).
  - Routes that already point at O(own_interface), or at anything else, are left alone, so a second run
    changes nothing.
  - The router role's keepalived notify hook runs the same code on the router (C(module_utils/route_takeover.py)
    as a script); this module is for playbooks (a planned move, a check).
  - "IAM actions used: C(ec2:DescribeRouteTables), C(ec2:ReplaceRoute)."
author:
  - tproxy.envoy contributors (@tproxy)
options:
  route_table_ids:
    description: The route tables to look at.
    type: list
    elements: str
    required: true
  own_interface:
    description: The network interface (C(eni-...)) of the router taking over.
    type: str
    required: true
  peer_interfaces:
    description: The network interfaces of the group's other routers; only routes naming one of them move.
    type: list
    elements: str
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
    details: Reads the route tables and reports the routes that would move.
  diff_mode:
    support: full
    details: Each moved route's target before and after.
  platform:
    platforms: posix
    details: Runs where boto3 is installed and the EC2 API is reachable (the controller, or the router itself).
"""

EXAMPLES = r"""
- name: Take the routes of router1 over to router2
  tproxy.envoy.ec2_route_takeover:
    route_table_ids: [rtb-0123456789abcdef0]
    own_interface: eni-0bbbbbbbbbbbbbbbb
    peer_interfaces: [eni-0aaaaaaaaaaaaaaaa]
  delegate_to: localhost
"""

RETURN = r"""
moved:
  description: The routes that moved (or would, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    route_table_id:
      description: The route table.
      type: str
    destination_key:
      description: How the route names its destination (C(DestinationCidrBlock), C(DestinationIpv6CidrBlock), C(DestinationPrefixListId)).
      type: str
    destination:
      description: The destination.
      type: str
    from:
      description: The peer interface the route pointed at.
      type: str
  sample: [{route_table_id: rtb-0123456789abcdef0, destination_key: DestinationCidrBlock, destination: 198.51.100.0/25,
            from: eni-0aaaaaaaaaaaaaaaa}]
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore itself

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.tproxy.envoy.plugins.module_utils.route_takeover import TakeoverError
from ansible_collections.tproxy.envoy.plugins.module_utils.route_takeover import apply
from ansible_collections.tproxy.envoy.plugins.module_utils.route_takeover import plan
from ansible_collections.tproxy.envoy.plugins.module_utils.route_takeover import read_route_tables


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            route_table_ids=dict(type="list", elements="str", required=True),
            own_interface=dict(type="str", required=True),
            peer_interfaces=dict(type="list", elements="str", required=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
    try:
        moves = plan(read_route_tables(client, params["route_table_ids"]), params["own_interface"], params["peer_interfaces"])
        if moves and not module.check_mode:
            apply(client, moves, params["own_interface"])
    except TakeoverError as e:
        module.fail_json(msg=str(e))
    except (ClientError, BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to take over the routes of %s in %s" % (params["peer_interfaces"], params["route_table_ids"]))
    result = dict(changed=bool(moves), moved=moves)
    if module._diff:
        result["diff"] = dict(before="".join("%s %s -> %s\n" % (m["route_table_id"], m["destination"], m["from"]) for m in moves),
                              after="".join("%s %s -> %s\n" % (m["route_table_id"], m["destination"], params["own_interface"])
                                            for m in moves))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
