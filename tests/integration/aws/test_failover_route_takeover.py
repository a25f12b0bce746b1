"""The fleet's AWS failover: the router that takes a group's address over points the route table entries that
named its peer's network interface at its own, against the moto EC2 server.

Both ways in: keepalived's notify hook runs plugins/module_utils/route_takeover.py as a script with the
configuration file the router role writes; playbooks use the tproxy.envoy.ec2_route_takeover module. moto
checks none of AWS's route rules and forwards no packets (README: what cannot be tested here).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aws_helpers import REGION
from aws_helpers import REPO
from aws_helpers import _run_local_json

SCRIPT = REPO / "plugins" / "module_utils" / "route_takeover.py"


@pytest.fixture
def fleet_routes(ec2, subnet):
    """Two routers' interfaces, a third (someone else's) and a route table whose routes name them."""
    vpc_id = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["VpcId"]
    enis = [ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"] for _index in range(3)]
    table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="203.0.113.0/25", NetworkInterfaceId=enis[0])
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="192.0.2.0/24", NetworkInterfaceId=enis[0])
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="203.0.113.128/25", NetworkInterfaceId=enis[2])
    yield {"table": table, "router1": enis[0], "router2": enis[1], "other": enis[2]}
    ec2.delete_route_table(RouteTableId=table)
    for eni in enis:
        ec2.delete_network_interface(NetworkInterfaceId=eni)


def targets(ec2, table):
    routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    return {r["DestinationCidrBlock"]: r.get("NetworkInterfaceId") for r in routes if r.get("NetworkInterfaceId")}


def notify_hook(aws_env, tmp_path, config, group="a"):
    path = tmp_path / "aws-takeover.json"
    path.write_text(json.dumps(config))
    return subprocess.run([sys.executable, str(SCRIPT), "--config", str(path), "--group", group], env=aws_env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_notify_hook_takes_the_peers_routes_and_only_those(ec2, aws_env, tmp_path, fleet_routes):
    config = {"region": REGION, "endpoint_url": aws_env["AWS_URL"], "own_interface": fleet_routes["router2"],
              "groups": {"a": {"route_table_ids": [fleet_routes["table"]], "peer_interfaces": [fleet_routes["router1"]]}}}
    proc = notify_hook(aws_env, tmp_path, config)
    assert proc.returncode == 0, proc.stderr
    assert targets(ec2, fleet_routes["table"]) == {"203.0.113.0/25": fleet_routes["router2"], "192.0.2.0/24": fleet_routes["router2"],
                                                   "203.0.113.128/25": fleet_routes["other"]}
    assert "203.0.113.0/25: %s -> %s" % (fleet_routes["router1"], fleet_routes["router2"]) in proc.stdout
    again = notify_hook(aws_env, tmp_path, config)
    assert again.returncode == 0 and "every route already points here" in again.stdout, again.stdout + again.stderr
    # Fail-back: the first router takes them back the same way.
    config.update(own_interface=fleet_routes["router1"])
    config["groups"]["a"]["peer_interfaces"] = [fleet_routes["router2"]]
    assert notify_hook(aws_env, tmp_path, config).returncode == 0
    assert targets(ec2, fleet_routes["table"])["203.0.113.0/25"] == fleet_routes["router1"]


def test_the_notify_hook_names_a_missing_route_table_and_ignores_an_unknown_group(aws_env, tmp_path, fleet_routes):
    config = {"region": REGION, "endpoint_url": aws_env["AWS_URL"], "own_interface": fleet_routes["router2"],
              "groups": {"a": {"route_table_ids": ["rtb-00000000000000000"], "peer_interfaces": [fleet_routes["router1"]]}}}
    proc = notify_hook(aws_env, tmp_path, config)
    assert proc.returncode == 2 and "route takeover: group a:" in proc.stderr and "rtb-00000000000000000" in proc.stderr, proc.stderr
    proc = notify_hook(aws_env, tmp_path, config, group="b")
    assert proc.returncode == 0 and "group b has no route tables" in proc.stdout


def _module(aws_env, args, *flags):
    _rc, report = _run_local_json(aws_env, "ansible", "localhost", "-m", "tproxy.envoy.ec2_route_takeover",
                                  "-a", json.dumps(args), *flags)
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_the_module_in_check_mode_then_for_real_then_idempotent(ec2, aws_env, fleet_routes):
    args = {"route_table_ids": [fleet_routes["table"]], "own_interface": fleet_routes["router2"],
            "peer_interfaces": [fleet_routes["router1"]]}
    checked = _module(aws_env, args, "--check", "--diff")
    assert checked["changed"] is True and len(checked["moved"]) == 2, checked
    assert targets(ec2, fleet_routes["table"])["203.0.113.0/25"] == fleet_routes["router1"]
    done = _module(aws_env, args)
    assert done["changed"] is True, done
    assert targets(ec2, fleet_routes["table"])["203.0.113.0/25"] == fleet_routes["router2"]
    assert _module(aws_env, args)["changed"] is False


def test_the_module_fails_clearly_on_a_missing_route_table(aws_env, fleet_routes):
    result = _module(aws_env, {"route_table_ids": ["rtb-00000000000000000"], "own_interface": fleet_routes["router2"],
                               "peer_interfaces": [fleet_routes["router1"]]})
    assert result.get("failed") and "Failed to take over the routes" in result["msg"], result
