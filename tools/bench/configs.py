"""Configuration files for the bench's own processes.

Envoy: the router role's configuration, rendered through its public `render` entry point with
the lab router's variables (so a change to the role changes what the bench measures), then,
for the tuned variants, edited as data. Each edit below is one tuning knob; the report names
the knobs each variant uses. HAProxy and nginx: small configs written here.
"""

import copy
import datetime
import json
import os
import subprocess

import yaml

import paths

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TEMPLATES = os.path.join(HERE, "templates")
# The bench renders for the lab's router, with the lab's own variables.
INVENTORY = os.path.join(REPO, "inventories", "lab")

HCM = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"


def render_role(renders, workdir, jobs=0):
    """The router role's public `render` entry point, once per item of renders (in `jobs`
    ansible-playbook runs side by side; 0: one per CPU).

    renders: list of dicts with dir (where the role writes), proxy_address, proxy_port,
    intercept_ports, l4_ports, evidence_headers, and for Envoy proxies admin_port, tls_ports,
    access_log, policy and policy_default (render_item gives the lab's values where a proxy sets
    none). Every other variable is the lab router's, from the lab inventory and the role's
    defaults, as site.yml deploys it.
    Each dir then holds the role's files (roles/router/meta/argument_specs.yml, `render`):
    envoy.yaml, lds.yaml, cds.yaml, envoy-static.yaml (the bench runs this one), envoy-args.json,
    rules.v4, netstate.json.
    """
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    # Rendering is about 5 s of CPU per item: one ansible-playbook per CPU, each with its share.
    chunks = [renders[i::jobs or os.cpu_count() or 1] for i in range(jobs or os.cpu_count() or 1)]
    running = []
    for i, chunk in enumerate(c for c in chunks if c):
        varfile = os.path.join(workdir, f"render-vars-{i}.json")
        with open(varfile, "w", encoding="utf-8") as f:
            json.dump({"bench_renders": chunk}, f)
        argv = ["ansible-playbook", "-i", INVENTORY, "-e", f"@{varfile}",
                os.path.join(TEMPLATES, "render_router.yml")]
        running.append(subprocess.Popen(argv, env=env, cwd=REPO, text=True,  # pylint: disable=consider-using-with
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    failed = []
    for proc in running:
        out, err = proc.communicate()
        if proc.returncode != 0:
            failed.append(out[-3000:] + err[-2000:])
    if failed:
        raise RuntimeError("rendering the router role (tasks_from: render) failed:\n" + "\n".join(failed))
    missing = [r["dir"] for r in renders if not os.path.isfile(os.path.join(r["dir"], "rules.v4"))]
    if missing:
        raise RuntimeError(f"the router role rendered nothing into {', '.join(missing)}")


def render_item(proxy, directory, lab_settings):
    """One item of render_role's list for a bench proxy (paths.Proxy).

    Its Envoy gets the targets' ports in the proxy's mode: HTTP ports at L7 (http), every port at
    L4 (tcp), or the HTTP ports at L7 and the TLS ports as TLS ports (tls). The access log and
    the policy are the proxy's own where it sets them, else lab_settings' (the lab router's
    router_access_log, router_policy, router_policy_default).
    """
    http, tls = paths.target_ports(tls=False), paths.target_ports(tls=True)
    item = {"dir": directory, "proxy_address": proxy.address, "proxy_port": proxy.port,
            "intercept_ports": [] if proxy.mode == "tcp" else http,
            "l4_ports": http + tls if proxy.mode == "tcp" else [],
            "evidence_headers": proxy.evidence_headers}
    if proxy.engine == "envoy":
        item.update(
            admin_port=proxy.admin_port, tls_ports=tls if proxy.mode == "tls" else [],
            access_log=proxy.access_log or lab_settings["router_access_log"],
            policy=[dict(r) for r in proxy.policy] if proxy.policy else lab_settings["router_policy"],
            policy_default=proxy.policy_default or lab_settings["router_policy_default"])
    return item


def role_envoy_args(render_dir):
    """The Envoy command-line arguments the role gives its container, without `-c FILE`."""
    with open(os.path.join(render_dir, "envoy-args.json"), encoding="utf-8") as f:
        args = json.load(f)
    i = args.index("-c")
    return args[:i] + args[i + 2:]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def dump(config, path):
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)


STDOUT_LOGGER = "envoy.access_loggers.stdout"


def access_loggers(config):
    """The names of every access logger in an Envoy configuration (any depth)."""
    if isinstance(config, dict):
        found = [log.get("name") for log in config.get("access_log", []) if isinstance(log, dict)]
        return found + [n for key, value in config.items() if key != "access_log" for n in access_loggers(value)]
    if isinstance(config, list):
        return [n for value in config for n in access_loggers(value)]
    return []


def stdout_access_log(config):
    """Whether the configuration logs access to Envoy's standard output (router_access_log: stdout)."""
    return STDOUT_LOGGER in access_loggers(config)


FILE_LOGGER = "envoy.access_loggers.file"


def move_file_access_logs(config, path):
    """Point every file access log of the configuration at path (in place); returns how many.

    A bench Envoy is a process on the controller, not the router's container: the role's file
    (router_access_log: a path on the router) becomes a file in the bench's work directory."""
    moved = 0
    if isinstance(config, dict):
        for log in config.get("access_log", []):
            if isinstance(log, dict) and log.get("name") == FILE_LOGGER:
                log["typed_config"]["path"] = path
                moved += 1
        moved += sum(move_file_access_logs(value, path) for key, value in config.items() if key != "access_log")
    elif isinstance(config, list):
        moved += sum(move_file_access_logs(value, path) for value in config)
    return moved


# ---------------------------------------------------------------- Envoy knobs (edits as data)

def _listener(config):
    return config["static_resources"]["listeners"][0]


def _hcms(config):
    for chain in _listener(config)["filter_chains"]:
        for flt in chain["filters"]:
            if flt["name"] == HCM:
                yield flt["typed_config"]


def _router_filters(config):
    for hcm in _hcms(config):
        for flt in hcm["http_filters"]:
            if flt["name"] == ROUTER_FILTER:
                yield flt["typed_config"]


def _clusters(config):
    return config["static_resources"]["clusters"]


def no_request_id(config):
    """HCM generate_request_id: false (no UUID per request, no x-request-id)."""
    for hcm in _hcms(config):
        hcm["generate_request_id"] = False


def suppress_envoy_headers(config):
    """Router filter: no x-envoy-expected-rq-timeout-ms / x-envoy-upstream-service-time."""
    for router in _router_filters(config):
        router["suppress_envoy_headers"] = True


def no_dynamic_stats(config):
    """Router filter: no per-request dynamic (per-cluster, per-code) stats."""
    for router in _router_filters(config):
        router["dynamic_stats"] = False


def exact_balance(config):
    """Listener: spread accepted connections evenly over the workers."""
    _listener(config)["connection_balance_config"] = {"exact_balance": {}}


def no_stream_timers(config):
    """No per-stream idle timer and no per-request route timeout (two timers per request)."""
    for hcm in _hcms(config):
        hcm["stream_idle_timeout"] = "0s"
        for vhost in hcm["route_config"]["virtual_hosts"]:
            for route in vhost["routes"]:
                route["route"]["timeout"] = "0s"


def no_upstream_header_filter(config):
    """Drop the cluster's HTTP options (header case, the evidence headers' upstream filter: cost only)."""
    for cluster in _clusters(config):
        cluster.pop("typed_extension_protocol_options", None)


def no_added_headers(config):
    """Drop the route's added request headers (the opt-in evidence headers: cost only)."""
    for hcm in _hcms(config):
        hcm["route_config"].pop("request_headers_to_add", None)


def no_stats(config):
    """Stats matcher rejects every stat (no counters on the hot path: cost only)."""
    config["stats_config"] = {"stats_matcher": {"reject_all": True}}


def generic_proxy_http1(config):
    """L7 on Envoy's generic_proxy with its HTTP/1 codec instead of the HTTP connection manager
    (a work-in-progress Envoy API, outside Envoy's threat model: bench only; no added headers)."""
    prefix = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy."
    for chain in _listener(config)["filter_chains"]:
        port = chain["filter_chain_match"]["destination_port"]
        chain["name"] = f"generic-http1-{port}"
        chain["filters"] = [{
            "name": "envoy.filters.network.generic_proxy",
            "typed_config": {
                "@type": prefix + "v3.GenericProxy",
                "stat_prefix": f"generic_{port}",
                "codec_config": {"name": "http1", "typed_config": {
                    "@type": prefix + "codecs.http1.v3.Http1CodecConfig"}},
                "filters": [{"name": "envoy.filters.generic.router", "typed_config": {
                    "@type": prefix + "router.v3.Router"}}],
                # No route matcher: every request goes to the original destination.
                "route_config": {"name": "original_destination", "routes": {"on_no_match": {
                    "action": {"name": "route", "typed_config": {
                        "@type": prefix + "action.v3.RouteAction",
                        "cluster": "original_destination"}}}}}}}]
    no_upstream_header_filter(config)


def dynamic_stats(config):
    """Router filter: the cluster's per-request dynamic stats back on (the role's
    router_envoy_dynamic_stats: true; Envoy's own default)."""
    for router in _router_filters(config):
        router["dynamic_stats"] = True


def minimal_hcm(config):
    """Envoy's floor for this path: each HTTP connection manager reduced to its stat prefix, one route
    to the original destination and the router filter (Envoy's defaults otherwise: no access log, no
    header case, no X-Forwarded-Proto handling, no upgrades), the cluster without HTTP options
    (cost only: not transparent)."""
    for chain in _listener(config)["filter_chains"]:
        for flt in chain["filters"]:
            if flt["name"] != HCM:
                continue
            hcm = flt["typed_config"]
            flt["typed_config"] = {
                "@type": hcm["@type"], "stat_prefix": hcm["stat_prefix"],
                "route_config": {"name": "original_destination", "virtual_hosts": [{
                    "name": "any", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "original_destination"}}]}]},
                "http_filters": [{"name": ROUTER_FILTER, "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    no_upstream_header_filter(config)


KNOBS = {f.__name__: f for f in (
    no_request_id, suppress_envoy_headers, no_dynamic_stats, dynamic_stats, exact_balance, no_stream_timers,
    no_upstream_header_filter, no_added_headers, no_stats, generic_proxy_http1, minimal_hcm)}
# Knobs that keep every header and behaviour verify.yml relies on, and that the role does not
# already apply (no request id, no x-envoy headers, 32 KiB buffer limits and no dynamic stats are
# the role's own settings now): the candidates left.
PRODUCT_SAFE = ("exact_balance",)
# Knobs that change behaviour (timeouts, a header, stats): measured to show Envoy's floor.
COST_ONLY = ("no_stream_timers", "no_upstream_header_filter", "no_stats")


def apply_knobs(config, knobs):
    config = copy.deepcopy(config)
    for knob in knobs:
        KNOBS[knob](config)
    return config


# ---------------------------------------------------------------- HAProxy and nginx

def haproxy_config(mode, port, threads, workdir):
    """HAProxy with a transparent bind on loopback; server 0.0.0.0 = the original destination."""
    http_only = "    option http-keep-alive\n" if mode == "http" else ""
    return f"""# bench-only: HAProxy {mode} mode behind the bench's TPROXY rule
global
    nbthread {threads}
    # Below the open-files limit (two descriptors per proxied connection).
    maxconn 8000
    pidfile {workdir}/haproxy-{mode}.pid
defaults
    mode {mode}
    timeout connect 5s
    timeout client 30s
    timeout server 30s
{http_only}frontend intercepted
    bind 127.0.0.1:{port} transparent
    default_backend original_destination
backend original_destination
    # 0.0.0.0 with no port: the address and port the client connected to.
    server original 0.0.0.0
"""


def nginx_config(address, port, workdir, tls_port=None, cert=None, key=None):
    """A static responder: one small fixed body, no logging, keep-alive without limit; with
    tls_port, the same over TLS (cert and key: PEM files, tls_certificate writes them)."""
    tls = "" if not tls_port else f"""    server {{
        listen {address}:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{ return 200 "static\\n"; }}
    }}
"""
    return f"""# bench-only static responder
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-tmp; proxy_temp_path {workdir}/nginx-tmp;
    fastcgi_temp_path {workdir}/nginx-tmp; uwsgi_temp_path {workdir}/nginx-tmp;
    scgi_temp_path {workdir}/nginx-tmp;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    server {{
        listen {address}:{port};
        location / {{ return 200 "static\\n"; }}
    }}
{tls}}}
"""


def tls_certificate(directory, name):
    """A self-signed ECDSA P-256 certificate for `name` and its key, written as PEM files into
    directory (bench only: wrk does not check it). Returns (certificate path, key path)."""
    # pylint: disable=import-outside-toplevel
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "tls-cert.pem"), os.path.join(directory, "tls-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
