"""The roles' defaults that depend on other hosts come from the topology model, through Ansible's own
hostvars: client_routes, webserver_return_routes and router_forward_sources of an inventory with two
router groups, and a bad inventory refused by each role's `validate`, naming the variable, with no
host touched (every host's Python interpreter is missing: a task that reached a host would fail).
"""

import json

from ansible_collections.tproxy.envoy.tests.unit.roles.role_playbook import ROLES, VALIDATE_TASK, run_play

# The variable of each role that the model gives its default.
SHOWN = {"router": "router_forward_sources", "webserver": "webserver_return_routes", "client": "client_routes"}
PLAY = """
- name: Validate each host's input as site.yml does, then show the defaults the model gave
  hosts: all
  gather_facts: false
  vars:
    site_roles: %s
    shown: %s
  tasks:%s
    - name: Show the defaults
      ansible.builtin.debug:
        msg: "{{ lookup('ansible.builtin.vars', shown[site_roles[group_names | first]]) }}"
""" % (json.dumps(ROLES), json.dumps(SHOWN), VALIDATE_TASK % "\n        public: true")

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "/nonexistent/python"}


def inventory(client_group="edge"):
    return {
        "all": {"vars": LOCAL},
        "routers": {"hosts": {
            "r1": {"ansible_host": "192.0.2.100", "tproxy_ipv6_address": "2001:db8::100"},
            "r2": {"ansible_host": "192.0.2.101"},
            "edge": {"ansible_host": "198.51.100.1", "router_group": "edge", "router_preserve_client_address": True}}},
        "webservers": {"hosts": {"web": {"ansible_host": "192.0.2.180", "tproxy_ipv6_address": "2001:db8::180"}}},
        "clients": {"hosts": {
            "client": {"ansible_host": "192.0.2.10", "tproxy_ipv6_address": "2001:db8::10"},
            "branch": {"ansible_host": "198.51.100.20", "tproxy_router_group": client_group}}},
    }


def run(tmp_path, inv):
    return run_play(tmp_path, inv, PLAY)


def test_two_router_groups_give_each_host_its_own_routers(tmp_path):
    report = run(tmp_path, inventory())
    assert all(s["failures"] == 0 and s["unreachable"] == 0 for s in report["stats"].values()), report["stats"]
    shown = {host: result["msg"] for host, result in report["plays"][0]["tasks"][-1]["hosts"].items()}
    assert shown == {
        # The default group's first router carries its client's traffic, in both families.
        "client": [{"dest": "192.0.2.180/32", "via": "192.0.2.100"}, {"dest": "2001:db8::180/128", "via": "2001:db8::100"}],
        "branch": [{"dest": "192.0.2.180/32", "via": "198.51.100.1"}],
        # Only the edge group keeps its clients' address: one return route, through it.
        "web": [{"dest": "198.51.100.20/32", "via": "198.51.100.1"}],
        "r1": ["192.0.2.10/32", "2001:db8::10/128"],
        "r2": ["192.0.2.10/32", "2001:db8::10/128"],
        "edge": ["198.51.100.20/32"],
    }


def test_a_client_naming_no_router_group_is_refused_by_validate_naming_the_variable(tmp_path):
    report = run(tmp_path, inventory(client_group="nowhere"))
    failed = {host: json.dumps(result) for task in report["plays"][0]["tasks"]
              for host, result in task["hosts"].items() if result.get("failed")}
    # Every role whose defaults read the topology stops in validate: nothing reached a host.
    assert sorted(failed) == ["branch", "client", "edge", "r1", "r2", "web"]
    for message in failed.values():
        assert "tproxy_router_group 'nowhere'" in message and "branch" in message, message
    # Stopped there: no host got as far as the next task.
    shown = [t for t in report["plays"][0]["tasks"] if t["task"]["name"] == "Show the defaults"]
    assert not shown or not shown[0]["hosts"], shown
