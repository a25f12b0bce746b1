"""netstate's script: `list --json` gives the items in the shape roles/netstate/README.md documents.

The template is rendered by Ansible's own templar and the script run with sh: `list` needs
neither root nor iptables.
"""

import json
import pathlib
import re
import subprocess

import jsonschema
import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 templates every string it is given
    def trust_as_template(value):
        return value


ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "netstate"
ROUTER = {
    "netstate_name": "router",
    "netstate_iptables": [{"table": "mangle", "chain": "TPROXY-ENVOY", "jump_from": "PREROUTING"},
                          {"table": "mangle", "chain": "TPROXY-ENVOY-DIVERT"},
                          {"table": "filter", "chain": "TPROXY-ENVOY-FWD", "jump_from": "FORWARD"}],
    "netstate_ip_rules": ["fwmark 0x1/0x1 lookup 100"],
    "netstate_routes": [{"dest": "0.0.0.0/0", "table": 100, "type": "local", "dev": "lo"}],
}
# The router on the nftables backend: its own table, iptables only for the forwarding acceptance.
NFT_ROUTER = dict(ROUTER, netstate_nftables=[{"family": "inet", "table": "tproxy_envoy"}],
                  netstate_iptables=[{"table": "filter", "chain": "TPROXY-ENVOY-FWD", "jump_from": "FORWARD"}])
# The router with IPv6: the same chains in ip6tables, the policy rule and local route in IPv6 too.
DUAL_ROUTER = dict(ROUTER, netstate_ip6tables=ROUTER["netstate_iptables"], netstate_ip6_rules=ROUTER["netstate_ip_rules"],
                   netstate_routes=ROUTER["netstate_routes"] + [{"dest": "::/0", "table": 100, "type": "local", "dev": "lo"}])
CLIENT = {"netstate_name": "client", "netstate_routes": [{"dest": "192.0.2.180/32", "via": "192.0.2.100"}]}


def schema():
    """The JSON Schema block of the role's README: the documentation is what is tested."""
    blocks = re.findall(r"```json\n(.*?)```", (ROLE / "README.md").read_text(), re.DOTALL)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def script(tmp_path, data):
    """The rendered script for ``data`` (over the role's defaults), written to tmp_path."""
    defaults = {"netstate_iptables": [], "netstate_ip6tables": [], "netstate_nftables": [], "netstate_ip_rules": [],
                "netstate_ip6_rules": [], "netstate_routes": [], "netstate_rules_path": "/nonexistent/rules",
                "netstate_rules6_path": "/nonexistent/rules6", "netstate_nft_rules_path": "/nonexistent/nft",
                "ansible_managed": "test"}
    templar = Templar(loader=DataLoader(), variables=dict(defaults, **data))
    path = tmp_path / "netstate.sh"
    path.write_text(templar.template(trust_as_template((ROLE / "templates" / "netstate.sh.j2").read_text())))
    return path


def run(path, *args):
    return subprocess.run(["sh", str(path), *args], capture_output=True, text=True, check=False)


def listed(path):
    proc = run(path, "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_router_state_as_json(tmp_path):
    document = listed(script(tmp_path, ROUTER))
    jsonschema.validate(document, schema())
    assert document == {"schema": 1, "name": "router", "items": [
        {"kind": "chain", "table": "mangle", "chain": "TPROXY-ENVOY"},
        {"kind": "chain", "table": "mangle", "chain": "TPROXY-ENVOY-DIVERT"},
        {"kind": "chain", "table": "filter", "chain": "TPROXY-ENVOY-FWD"},
        {"kind": "jump", "table": "mangle", "from": "PREROUTING", "chain": "TPROXY-ENVOY"},
        {"kind": "jump", "table": "filter", "from": "FORWARD", "chain": "TPROXY-ENVOY-FWD"},
        {"kind": "rule", "selector": "fwmark 0x1/0x1 lookup 100"},
        {"kind": "route", "dest": "0.0.0.0/0", "table": "100", "type": "local", "via": None, "dev": "lo"},
    ]}


def test_the_router_state_on_the_nftables_backend_lists_its_table_first(tmp_path):
    document = listed(script(tmp_path, NFT_ROUTER))
    jsonschema.validate(document, schema())
    assert document["items"][:3] == [
        {"kind": "nftable", "family": "inet", "table": "tproxy_envoy"},
        {"kind": "chain", "table": "filter", "chain": "TPROXY-ENVOY-FWD"},
        {"kind": "jump", "table": "filter", "from": "FORWARD", "chain": "TPROXY-ENVOY-FWD"},
    ]
    assert run(script(tmp_path, NFT_ROUTER), "list").stdout.splitlines()[0] == "nftable\tinet\ttproxy_envoy"


def test_the_dual_stack_router_lists_its_ip6tables_chains_and_ipv6_rule_as_their_own_kinds(tmp_path):
    document = listed(script(tmp_path, DUAL_ROUTER))
    jsonschema.validate(document, schema())
    assert document["items"][5:] == [
        {"kind": "chain6", "table": "mangle", "chain": "TPROXY-ENVOY"},
        {"kind": "chain6", "table": "mangle", "chain": "TPROXY-ENVOY-DIVERT"},
        {"kind": "chain6", "table": "filter", "chain": "TPROXY-ENVOY-FWD"},
        {"kind": "jump6", "table": "mangle", "from": "PREROUTING", "chain": "TPROXY-ENVOY"},
        {"kind": "jump6", "table": "filter", "from": "FORWARD", "chain": "TPROXY-ENVOY-FWD"},
        {"kind": "rule", "selector": "fwmark 0x1/0x1 lookup 100"},
        {"kind": "rule6", "selector": "fwmark 0x1/0x1 lookup 100"},
        {"kind": "route", "dest": "0.0.0.0/0", "table": "100", "type": "local", "via": None, "dev": "lo"},
        {"kind": "route", "dest": "::/0", "table": "100", "type": "local", "via": None, "dev": "lo"},
    ]


def test_a_route_without_table_type_or_device_gets_the_ip_defaults(tmp_path):
    document = listed(script(tmp_path, CLIENT))
    jsonschema.validate(document, schema())
    assert document["items"] == [{"kind": "route", "dest": "192.0.2.180/32", "table": "main", "type": "unicast",
                                  "via": "192.0.2.100", "dev": None}]


def test_an_empty_state_is_an_empty_list(tmp_path):
    document = listed(script(tmp_path, {"netstate_name": "empty"}))
    jsonschema.validate(document, schema())
    assert document["items"] == []


def test_quotes_and_backslashes_are_escaped(tmp_path):
    odd = {"netstate_name": 'o"dd', "netstate_routes": [{"dest": "192.0.2.0/24", "dev": 'we"ird\\dev'}]}
    document = listed(script(tmp_path, odd))
    assert document["name"] == 'o"dd' and document["items"][0]["dev"] == 'we"ird\\dev'


def test_text_list_is_the_same_items_one_per_line(tmp_path):
    path = script(tmp_path, ROUTER)
    text = run(path, "list")
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    items = listed(path)["items"]
    assert len(lines) == len(items)
    assert [line.split("\t")[0] for line in lines] == [item["kind"] for item in items]
    assert lines[-1] == "route\t0.0.0.0/0\t100\tlocal\t-\tlo"


@pytest.mark.parametrize("args", [("list", "--yaml"), ("frobnicate",), ()])
def test_unknown_commands_are_refused_with_usage(tmp_path, args):
    proc = run(script(tmp_path, ROUTER), *args)
    assert proc.returncode == 2 and "list [--json]" in proc.stderr


def test_the_schema_refuses_a_wrong_shape():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema": 1, "name": "x", "items": [{"kind": "rule", "selector": 1}]}, schema())
