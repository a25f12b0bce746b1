"""How the router policy's configuration grows with its names (no lab, no root).

For 0, 10, 100, 1,000 and 10,000 name rules, in two shapes (one rule per name, as the bench's
`site-NNN.example.com` allowlist, and one rule listing every name), with a TLS port beside the
HTTP one: the router role's own plan (plugins/plugin_utils/router_model.py, the role's defaults
otherwise), the size of the watched listener file, the time to build the plan, and the time of
`envoy --mode validate` on the whole static configuration (what the role runs before it replaces
a watched file). Prints a Markdown table; nothing is asserted (timings are this machine's).

    .venv/bin/python tools/bench/policy_scale.py [--counts 10,10000] [--envoy PATH]
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".cache" / "collections"))

from ansible_collections.tproxy.envoy.plugins.plugin_utils import router_model  # noqa: E402  pylint: disable=wrong-import-position

COUNTS = (0, 10, 100, 1000, 10000)


def rules(count, shape):
    names = ["site-%05d.example.com" % i for i in range(1, count + 1)]
    if shape == "one rule per name":
        return [{"name": "site-%05d" % i, "action": "allow", "hosts": [name]} for i, name in enumerate(names, start=1)]
    return [{"name": "allowlist", "action": "allow", "hosts": names}] if names else []


def settings(policy):
    values = yaml.safe_load((REPO / "roles/router/defaults/main.yml").read_text(encoding="utf-8"))
    values.update(router_ipv6=False, router_forward_sources=["192.0.2.10/32"], router_envoy_engine_host="router",
                  router_intercept_tls_ports=[443], router_access_log="stdout", router_policy=policy, router_policy_default="deny")
    return values


def measure(count, shape, envoy, workdir):
    started = time.monotonic()
    plan = router_model.router_plan(settings(rules(count, shape)), "router")
    assert not plan["problems"], plan["problems"]
    planned = time.monotonic() - started
    lds = plan["envoy"]["watched"]["lds.yaml"]
    static = pathlib.Path(workdir, "static-%d.yaml" % count)
    static.write_text(plan["envoy"]["static_yaml"], encoding="utf-8")
    started = time.monotonic()
    res = subprocess.run([envoy, "--mode", "validate", "-c", str(static), "--log-level", "error"],
                         capture_output=True, text=True, check=False)
    validated = time.monotonic() - started
    listener = plan["envoy"]["listeners"][0]
    http = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return {"count": count, "shape": shape, "lds_bytes": len(lds.encode("utf-8")),
            "virtual_hosts": len(http["route_config"]["virtual_hosts"]), "filter_chains": len(listener["filter_chains"]),
            "plan_s": planned, "validate_s": validated, "valid": res.returncode == 0,
            "error": "" if res.returncode == 0 else (res.stdout + res.stderr).strip()[-400:]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)))
    parser.add_argument("--envoy", default=shutil.which("envoy") or str(REPO / ".venv/bin/envoy"))
    args = parser.parse_args(argv)
    print("| name rules | shape | lds.yaml | virtual hosts (port 80) | filter chains | plan | envoy --mode validate |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    failed = []
    with tempfile.TemporaryDirectory(prefix="policy-scale-") as workdir:
        for count in (int(c) for c in args.counts.split(",")):
            for shape in ("one rule per name", "one rule, all names"):
                if count == 0 and shape != "one rule per name":
                    continue
                row = measure(count, shape, args.envoy, workdir)
                print("| %d | %s | %.1f KiB | %d | %d | %.2f s | %s |" % (
                    row["count"], row["shape"], row["lds_bytes"] / 1024, row["virtual_hosts"], row["filter_chains"],
                    row["plan_s"], "%.2f s" % row["validate_s"] if row["valid"] else "REFUSED"))
                sys.stdout.flush()
                if not row["valid"]:
                    failed.append(row)
    for row in failed:
        print("envoy refused %d names (%s): %s" % (row["count"], row["shape"], row["error"]), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    sys.exit(main())
