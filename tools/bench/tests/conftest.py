"""The bench's modules are plain files in tools/bench/: make them importable by their names."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


import pytest  # noqa: E402  (after the path setup above)

import configs  # noqa: E402
import lab  # noqa: E402
import paths  # noqa: E402


@pytest.fixture(scope="session")
def role_renders(tmp_path_factory):
    """The router role's `render` entry point, run as the bench runs it, once for the session:
    an L7 Envoy (ports 80 and 8080), the same with the evidence headers, an L4 Envoy and a HAProxy
    (rule set only); and the bench's own items (configs.render_item) for its proxies with the access
    log off, a policy of 100 host rules, a TLS port, and its L4 Envoy."""
    workdir = tmp_path_factory.mktemp("render")
    renders = {
        "l7": {"proxy_address": "127.0.0.1", "proxy_port": 4998, "admin_port": 19001,
               "intercept_ports": [80, 8080], "l4_ports": [], "evidence_headers": False},
        "l7-evidence": {"proxy_address": "127.0.0.1", "proxy_port": 4994, "admin_port": 19004,
                        "intercept_ports": [80], "l4_ports": [], "evidence_headers": True},
        "l4": {"proxy_address": "127.0.0.1", "proxy_port": 4995, "admin_port": 19003,
               "intercept_ports": [80], "l4_ports": [8080, 5432], "evidence_headers": False},
        "haproxy": {"proxy_address": "127.0.0.1", "proxy_port": 4997,
                    "intercept_ports": [80, 8080], "l4_ports": [], "evidence_headers": False},
    }
    settings = lab.router_settings()
    for name, render in renders.items():
        render["dir"] = str(workdir / name)
        if "admin_port" in render:
            render.update(tls_ports=[], access_log=settings["router_access_log"],
                          policy=settings["router_policy"], policy_default=settings["router_policy_default"])
    for name in ("envoy-log-off", "envoy-policy", "envoy-tls", "envoy-tcp"):
        renders[name] = configs.render_item(paths.proxy(name), str(workdir / name), settings)
    configs.render_role(list(renders.values()), str(workdir))
    return {name: render["dir"] for name, render in renders.items()}
