"""playbooks/aws_infra.yml's routes to the clients (router_preserve_client_address) against a moto EC2 server.

The playbook runs with the AWS inventory (plus, where a test says so, a static client outside the
VPC), reads it again once the instances run, and takes router_preserve_client_address from the
router that carries the clients' traffic (group_vars/routers.yml beside the inventory, as a user sets it).

What moto cannot show: it accepts any route (a /32 inside the VPC, an interface of another VPC),
where AWS accepts a route more specific than the local route only for a whole subnet, and it
forwards no packets. The destinations asserted here are the ones AWS accepts
(tproxy.envoy.aws_return_routes); whether replies then reach the router is for a real VPC to show.
"""

from __future__ import annotations

import json
import shutil

import pytest

from aws_helpers import REPO
from aws_helpers import run_playbook

UP = REPO / "playbooks" / "aws_infra.yml"
DOWN = REPO / "playbooks" / "aws_infra_down.yml"
CLIENT_SUBNET = "198.51.100.0/25"
WEB_SUBNET = "198.51.100.128/25"
# A client outside the VPC (reached through a VPN, say), from a static inventory beside the AWS one.
BRANCH_CLIENT = "192.0.2.10"
BRANCH_CLIENT_IPV6 = "2001:db8::10"


@pytest.fixture
def inventory(tmp_path):
    """The AWS inventory in a directory of its own; set_preserve(bool) writes group_vars/routers.yml."""
    directory = tmp_path / "aws"
    (directory / "group_vars").mkdir(parents=True)
    shutil.copy(REPO / "inventories" / "aws" / "aws_ec2.yml", directory / "aws_ec2.yml")

    def set_preserve(value):
        (directory / "group_vars" / "routers.yml").write_text(
            f"---\nrouter_preserve_client_address: {str(value).lower()}\n")

    set_preserve(True)
    return directory, set_preserve


@pytest.fixture
def branch(tmp_path):
    path = tmp_path / "branch.yml"
    path.write_text(
        "---\nclients:\n  hosts:\n    branch-client:\n"
        f"      ansible_host: {BRANCH_CLIENT}\n      tproxy_ipv6_address: \"{BRANCH_CLIENT_IPV6}\"\n")
    return path


def up(env, ami_id, inventories, *extra):
    rc, report = run_playbook(env, UP, "-e", f"aws_ami_id={ami_id}", "-e", "aws_ssh_cidr=192.0.2.0/24", *extra,
                              inventories=inventories)
    return rc, report


def changed_tasks(report):
    return [t["task"]["name"] for t in report["plays"][0]["tasks"] if t["hosts"].get("localhost", {}).get("changed")]


def task_result(report, name):
    [result] = [t["hosts"]["localhost"] for t in report["plays"][0]["tasks"] if t["task"]["name"] == name]
    return result


def tables(ec2, project):
    """Name tag -> route table of the project."""
    found = ec2.describe_route_tables(Filters=[{"Name": "tag:tproxy-project", "Values": [project]}])["RouteTables"]
    return {next(t["Value"] for t in table["Tags"] if t["Key"] == "Name"): table for table in found}


def routes(table):
    """destination -> target of every route but the local one."""
    result = {}
    for route in table["Routes"]:
        dest = route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock")
        target = route.get("NetworkInterfaceId") or route.get("GatewayId")
        if target != "local":
            result[dest] = target
    return result


def router_eni(ec2, project):
    filters = [{"Name": "tag:tproxy-project", "Values": [project]}, {"Name": "tag:tproxy-role", "Values": ["router"]},
               {"Name": "instance-state-name", "Values": ["running"]}]
    [[router]] = [r["Instances"] for r in ec2.describe_instances(Filters=filters)["Reservations"]]
    [primary] = [n for n in router["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0]
    return primary["NetworkInterfaceId"]


def test_routes_follow_the_option_and_leave_other_routes_alone(aws_env, ec2, ami_id, unique_tag, inventory, branch):
    env = dict(aws_env, TPROXY_AWS_PROJECT=unique_tag)
    directory, set_preserve = inventory
    sources = (directory, branch)
    split = ("-e", f"aws_web_subnet_cidr={WEB_SUBNET}")

    rc, first = up(env, ami_id, sources, *split)
    assert rc == 0, json.dumps(first)[-3000:]
    eni = router_eni(ec2, unique_tag)
    found = tables(ec2, unique_tag)
    web_table, main_table = found[f"{unique_tag}-web-rtb"], found[f"{unique_tag}-rtb"]
    igw = routes(main_table)["0.0.0.0/0"]
    # The clients' subnet (AWS routes nothing smaller inside the VPC) and the client outside the VPC
    # as a host route, both to the router's primary interface; no IPv6 route, as the web server's
    # subnet has no IPv6.
    assert routes(web_table) == {"0.0.0.0/0": igw, CLIENT_SUBNET: eni, f"{BRANCH_CLIENT}/32": eni}
    assert routes(main_table) == {"0.0.0.0/0": igw}
    reasons = task_result(first, "Show the route each client needs for the web server's replies")["msg"]
    assert any(r.startswith(f"{BRANCH_CLIENT_IPV6}: IPv6, and the web server's subnet has no IPv6") for r in reasons)

    # Someone else's routes in the same table, one of them to the same interface.
    ec2.create_route(RouteTableId=web_table["RouteTableId"], DestinationCidrBlock="203.0.113.0/24",
                     NetworkInterfaceId=eni)
    ec2.create_route(RouteTableId=web_table["RouteTableId"], DestinationCidrBlock="192.0.2.128/25", GatewayId=igw)
    foreign = {"203.0.113.0/24": eni, "192.0.2.128/25": igw}

    rc, second = up(env, ami_id, sources, *split)
    assert rc == 0 and second["stats"]["localhost"]["changed"] == 0, changed_tasks(second)
    assert routes(tables(ec2, unique_tag)[f"{unique_tag}-web-rtb"]) == {
        "0.0.0.0/0": igw, CLIENT_SUBNET: eni, f"{BRANCH_CLIENT}/32": eni, **foreign}

    set_preserve(False)
    rc, check = up(env, ami_id, sources, *split, "--check")
    assert rc == 0 and changed_tasks(check) == ["Ensure the routes through the router that are no longer wanted are gone"]
    assert CLIENT_SUBNET in routes(tables(ec2, unique_tag)[f"{unique_tag}-web-rtb"])

    rc, off = up(env, ami_id, sources, *split)
    assert rc == 0 and changed_tasks(off) == ["Ensure the routes through the router that are no longer wanted are gone"]
    assert routes(tables(ec2, unique_tag)[f"{unique_tag}-web-rtb"]) == {"0.0.0.0/0": igw, **foreign}
    rc, again = up(env, ami_id, sources, *split)
    assert rc == 0 and again["stats"]["localhost"]["changed"] == 0, changed_tasks(again)

    set_preserve(True)
    rc, on = up(env, ami_id, sources, *split)
    assert rc == 0 and changed_tasks(on) == [
        "Ensure the route tables route through the router's network interface"]
    assert routes(tables(ec2, unique_tag)[f"{unique_tag}-web-rtb"]) == {
        "0.0.0.0/0": igw, CLIENT_SUBNET: eni, f"{BRANCH_CLIENT}/32": eni, **foreign}

    rc, down = run_playbook(env, DOWN)
    assert rc == 0, json.dumps(down)[-3000:]
    assert tables(ec2, unique_tag) == {}
    everywhere = [r for t in ec2.describe_route_tables()["RouteTables"] for r in t["Routes"]]
    assert not [r for r in everywhere if r.get("NetworkInterfaceId") == eni]


def test_one_subnet_needs_no_route_and_refuses_one_that_would_loop(aws_env, ec2, ami_id, unique_tag, inventory,
                                                                   branch):
    env = dict(aws_env, TPROXY_AWS_PROJECT=unique_tag)
    directory, _set_preserve = inventory

    # Client, router and web server share the seed's one subnet: the replies stay inside it (layer 2,
    # the webserver role's route through the router), no VPC route is needed or added.
    rc, first = up(env, ami_id, (directory,))
    assert rc == 0, json.dumps(first)[-3000:]
    [table] = tables(ec2, unique_tag).values()
    assert set(routes(table)) == {"0.0.0.0/0"}
    [reason] = task_result(first, "Show the route each client needs for the web server's replies")["msg"]
    assert "in the web server's subnet: delivered at layer 2" in reason

    # A client outside the VPC would need a route in the table the router's own subnet uses too:
    # the router's packets to that client would come back to it. Refused, nothing changed.
    rc, refused = up(env, ami_id, (directory, branch))
    assert rc != 0
    message = task_result(refused, "Check that the routes through the router can be added as AWS routes them")["msg"]
    assert "would send the router's own packets to the clients back to it" in message
    assert "aws_web_subnet_cidr" in message
    assert set(routes(tables(ec2, unique_tag)[f"{unique_tag}-rtb"])) == {"0.0.0.0/0"}

    rc, down = run_playbook(env, DOWN)
    assert rc == 0, json.dumps(down)[-3000:]
    assert tables(ec2, unique_tag) == {}


def test_without_an_ec2_router_in_the_inventory_routes_are_left_alone(aws_env, ami_id, unique_tag):
    env = dict(aws_env, TPROXY_AWS_PROJECT=unique_tag)
    rc, report = up(env, ami_id, ("localhost,",), "-e", "router_preserve_client_address=true")
    assert rc == 0, json.dumps(report)[-3000:]
    assert "left as they are" in task_result(report, "Say why the routes through the router are left as they are")["msg"]
    rc, down = run_playbook(env, DOWN)
    assert rc == 0
