"""The lab router's own Envoy container, as site.yml deploys it, against the bench's targets.

The lab's router intercepts port 80 (httpbin) only. So that its container can be measured against
the static responder as well, the bench runs site.yml for the routers with the lab's own variables
plus the static responder's port in router_intercept_ports (a listener change: Envoy applies it
without a new process) and, when it is done, once more with the lab's variables alone: the lab is
left as it was. Every other setting is the lab's, that is the role's defaults (the lab inventory
overrides only the image, its pull and the user).

Variants (paths.DEPLOYED_VARIANTS) are the same deployment with one of the role's defaults changed (the access log's
destination, the worker count): each is deployed in turn by site.yml, measured, and replaced by the
next, so that each default's price is read on the container an operator runs. By hand:

    ansible-playbook playbooks/site.yml --limit routers -e '{"router_intercept_ports": [80, 8080]}'
    # ... measure (tools/bench/README.md: the deployed container, by hand) ...
    ansible-playbook playbooks/site.yml --limit routers
"""

import json
import os

import control
import lab
import paths


def bench_vars(extra=None):
    """site.yml's extra variables for the bench: the lab's intercepted ports plus the static responder's."""
    ports = lab.router_settings(("router_intercept_ports",))["router_intercept_ports"]
    return {"router_intercept_ports": sorted(set(ports) | {paths.STATIC_PORT}), **(extra or {})}


def site_argv_extra(extra_vars):
    """ansible-playbook arguments after the playbook: the routers only, with extra_vars (None: the lab's own)."""
    return ["--limit", "routers"] + (["-e", json.dumps(extra_vars, sort_keys=True)] if extra_vars is not None else [])


def deploy(log, extra_vars, label):
    """site.yml for the routers with extra_vars (None: the lab's variables alone); returns the
    control.playbook step, raises RuntimeError when it fails."""
    step = control.playbook("site.yml", label=label, extra_args=site_argv_extra(extra_vars))
    log(f"deployed: {label}: {step['seconds']:.1f} s, {step['recap']}")
    if step["rc"] != 0:
        raise RuntimeError(f"site.yml ({label}) failed:\n{step['tail']}")
    return step


def access_log_lines(path):
    """Lines in the lab router's access log file `path` (read in the router's own mount namespace:
    a lab host's /var/lib and /var/log are its own), or None when it cannot be read."""
    try:
        with open(os.path.join(lab.LAB_DIR, "router", "holder.pid"), encoding="ascii") as f:
            holder = int(f.read().strip())
    except (OSError, ValueError):
        return None
    res = lab.run(["nsenter", "-t", str(holder), "-m", "wc", "-l", path], check=False)
    try:
        return int(res.stdout.split()[0])
    except (IndexError, ValueError):
        return None
