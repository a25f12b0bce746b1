"""What the bench compares: the data paths, the proxies behind them, the targets.

A path is a rule set on the router (rules.path_rules kind) plus the proxy that gets the
connections. All bench proxies listen in the router's netns, on ports of their own, and
are started and stopped by the bench; `product` is the lab's own Envoy container.
"""

from dataclasses import dataclass, field

import lab

STATIC_PORT = 8080  # the bench's nginx in the web netns (httpbin holds :80)
TLS_PORT = 8443     # the same nginx over TLS (a self-signed certificate the bench makes)
TLS_NAME = "www.example.com"  # the certificate's name (wrk sends the URL's address as SNI)

TARGETS = {
    "static": {"port": STATIC_PORT, "url": f"http://{lab.WEB}:{STATIC_PORT}/",
               "label": "static nginx"},
    # One synchronous gunicorn worker: beyond 16 connections wrk only measures its queue.
    "httpbin": {"port": lab.HTTPBIN_PORT, "url": f"http://{lab.WEB}:{lab.HTTPBIN_PORT}/get",
                "label": "httpbin /get", "max_conns": 16},
    # HTTPS to the same nginx: keep-alive (a TLS handshake per connection, many requests each) ...
    # TLS is compared from 16 connections up (make bench's time): one connection adds nothing the
    # plain targets do not show.
    "tls": {"port": TLS_PORT, "url": f"https://{lab.WEB}:{TLS_PORT}/", "tls": True, "min_conns": 16,
            "label": "static nginx over TLS, keep-alive"},
    # ... and one request per connection (a handshake, the TLS inspector and an upstream connect
    # each time). TLS handshakes cost the client and nginx much more than the proxy: 16 at most.
    "tls-new": {"port": TLS_PORT, "url": f"https://{lab.WEB}:{TLS_PORT}/", "tls": True,
                "headers": ("Connection: close",), "max_conns": 16, "min_conns": 16,
                "label": "static nginx over TLS, a new connection per request"},
}
HTTP_TARGETS = ("static", "httpbin")
TLS_TARGETS = ("tls", "tls-new")


def target_ports(tls):
    """The targets' ports, TLS (tls=True) or plain HTTP."""
    return sorted({t["port"] for t in TARGETS.values() if bool(t.get("tls")) == tls})


# The bench's policy of 100 host rules (router_policy, issue 16): an egress allowlist of 100
# generated names, default deny; the load sends the last rule's name as Host, so every request
# is checked against all 100 rules before it is allowed (the worst case for an allowed request).
POLICY_RULES = 100


def policy_rules(count=POLICY_RULES, one_rule=False):
    """``count`` allow rules of one generated name each, or (``one_rule``) one rule of ``count`` names."""
    rules = [{"name": f"site-{i:03d}", "action": "allow", "hosts": [f"site-{i:03d}.example.com"]}
             for i in range(1, count + 1)]
    if one_rule:
        return [{"name": "allowlist", "action": "allow", "hosts": [h for r in rules for h in r["hosts"]]}]
    return rules


def policy_host(count=POLICY_RULES):
    """The Host that matches the last of policy_rules(count)."""
    return f"site-{count:03d}.example.com"


@dataclass
class Proxy:
    name: str
    engine: str                   # envoy | haproxy
    port: int
    address: str = "127.0.0.1"
    mode: str = "http"            # http | tcp | tls (Envoy: the role's TLS ports, SNI read)
    admin_port: int = 0           # Envoy only
    knobs: tuple = ()             # configs.KNOBS applied to the role's rendered config
    concurrency: int = 0          # Envoy --concurrency; 0 = the role's (all CPUs)
    evidence_headers: bool = False  # the role's router_envoy_evidence_headers (opt-in)
    access_log: str = ""          # the role's router_access_log; "" = the lab's (stdout)
    policy: tuple = ()            # the role's router_policy (rules as dicts); () = the lab's (none)
    policy_default: str = ""      # the role's router_policy_default; "" = the lab's (allow)
    headers: tuple = ()           # request headers the load sends through this proxy (a policy's Host)
    target: str = "static"        # what the profile counts it against (instructions.py)


@dataclass
class Path:
    name: str
    label: str
    kind: str                     # rules.path_rules kind
    proxy: str = ""               # a Proxy name, "product", or "" (no proxy)
    targets: tuple = HTTP_TARGETS
    notes: list = field(default_factory=list)
    # The lab's container deployed with other role variables (DEPLOYED_VARIANTS): measured after
    # the interleaved paths, each variant deployed in turn by site.yml (tools/bench/deployed.py).
    deployment: str = ""


# The role's config for TPROXY (b) and REDIRECT (c) alike, so (c) - (b) is the mechanism alone.
PROXIES = [
    Proxy("envoy-role", "envoy", 4998, admin_port=19001),
    Proxy("envoy-redirect", "envoy", 4996, address=lab.ROUTER, admin_port=19002),
    Proxy("haproxy-http", "haproxy", 4997),
    Proxy("envoy-tcp", "envoy", 4995, mode="tcp", admin_port=19003),
    Proxy("haproxy-tcp", "haproxy", 4994, mode="tcp"),
    # Issue 16's costs: the role's defaults with the access log off, with 100 host rules, a TLS port.
    Proxy("envoy-log-off", "envoy", 4993, admin_port=19004, access_log="off"),
    Proxy("envoy-policy", "envoy", 4992, admin_port=19005, policy=tuple(policy_rules()),
          policy_default="deny", headers=(f"Host: {policy_host()}",)),
    Proxy("envoy-tls", "envoy", 4991, mode="tls", admin_port=19006),
]

PATHS = [
    Path("direct", "(a) direct: router forwards", "direct", targets=tuple(TARGETS)),
    Path("envoy-tproxy", "(b) TPROXY -> Envoy HTTP (role config)", "tproxy", "envoy-role"),
    Path("envoy-product", "(b') TPROXY -> the lab's Envoy container (site.yml, role defaults)", "product",
         "product", targets=("static", "httpbin")),
    # httpbin (one synchronous worker) dominates its rows: the proxies are compared on the static
    # responder; httpbin keeps the direct path, the role's Envoy and the lab's container.
    Path("envoy-redirect", "(c) nat REDIRECT -> Envoy HTTP (role config)", "redirect", "envoy-redirect",
         targets=("static",)),
    Path("haproxy-http", "(d) TPROXY -> HAProxy HTTP", "tproxy", "haproxy-http", targets=("static",)),
    Path("envoy-tcp", "(e) TPROXY -> Envoy tcp_proxy (role L4 mode)", "tproxy", "envoy-tcp",
         targets=("static",) + TLS_TARGETS),
    Path("haproxy-tcp", "(e') TPROXY -> HAProxy TCP", "tproxy", "haproxy-tcp", targets=("static",)),
    Path("envoy-log-off", "(f) TPROXY -> Envoy HTTP, role config, access log off", "tproxy",
         "envoy-log-off", targets=("static",)),
    Path("envoy-policy", f"(g) TPROXY -> Envoy HTTP, role config + {POLICY_RULES} host rules "
         "(Host matches the last)", "tproxy", "envoy-policy", targets=("static",)),
    Path("envoy-tls", "(h) TPROXY -> Envoy TLS port (TLS inspector + tcp_proxy)", "tproxy", "envoy-tls",
         targets=TLS_TARGETS),
]


# The lab's container with one of the role's defaults changed: {path name: (label, role variables)}.
DEPLOYED_VARIANTS = {
    "product-stdout": ("(b'1) the lab's container, `router_access_log: stdout` (into the container's log)",
                       {"router_access_log": "stdout"}),
    "product-log-off": ("(b'2) the lab's container, `router_access_log: off`", {"router_access_log": "off"}),
    "product-1-worker": ("(b'3) the lab's container, `router_envoy_concurrency: 1` (one worker)",
                         {"router_envoy_concurrency": 1}),
}
PATHS += [Path(name, label, "product", "product", targets=("static",), deployment=name)
          for name, (label, _vars) in DEPLOYED_VARIANTS.items()]


def add_envoy_variant(name, knobs, concurrency, index, targets=HTTP_TARGETS):
    """An extra Envoy HTTP path behind the bench TPROXY rule (tuning candidates)."""
    port, admin = 4990 - index, 19010 + index
    PROXIES.append(Proxy(name, "envoy", port, admin_port=admin, knobs=tuple(knobs),
                         concurrency=concurrency))
    desc = ", ".join(knobs) or "role config"
    if concurrency:
        desc += f", --concurrency {concurrency}"
    PATHS.append(Path(name, f"(b+) TPROXY -> Envoy HTTP {name}: {desc}", "tproxy", name,
                      targets=targets))


# What the profile counts (tools/bench/instructions.py): each proxy with one worker, on ports of its own,
# against the static responder (HTTP) unless a target is named (TLS keep-alive).
PROFILED = (
    ("envoy-role", "Envoy HTTP, role config (access log on, stdout)", "envoy", "http", ()),
    ("envoy-log-off", "Envoy HTTP, role config, access log off", "envoy", "http", (),
     {"access_log": "off"}),
    ("envoy-policy", f"Envoy HTTP, role config + {POLICY_RULES} host rules (Host matches the last)",
     "envoy", "http", (), {"policy": tuple(policy_rules()), "policy_default": "deny",
                           "headers": (f"Host: {policy_host()}",)}),
    # One rule of 10 and of 10,000 names: names are looked up (virtual hosts by hash), so the price
    # of a request should not follow their number. (10,000 rules of one name each cost the same per
    # request but a configuration of 23 MB, which Envoy under callgrind takes too long to load:
    # tools/bench/policy_scale.py measures that shape.)
    *((f"envoy-policy-{count}", f"Envoy HTTP, role config + one rule of {count:,} host names (Host matches the last)",
       "envoy", "http", (), {"policy": tuple(policy_rules(count, one_rule=True)), "policy_default": "deny",
                             "headers": (f"Host: {policy_host(count)}",)}) for count in (10, 10000)),
    ("envoy-dynamic-stats", "Envoy HTTP, role config + `router_envoy_dynamic_stats: true` (Envoy's default)",
     "envoy", "http", ("dynamic_stats",)),
    ("envoy-minimal", "Envoy HTTP, minimal: connection manager, one route, router (Envoy's floor here)",
     "envoy", "http", ("minimal_hcm",)),
    ("envoy-tuned", "Envoy HTTP, tuned knobs", "envoy", "http", "tuned"),
    ("envoy-lean", "Envoy HTTP, lean knobs", "envoy", "http", "lean"),
    ("envoy-generic", "Envoy generic_proxy HTTP/1 (bench only)", "envoy", "http",
     ("generic_proxy_http1",)),
    ("envoy-tcp", "Envoy tcp_proxy (role L4 mode)", "envoy", "tcp", ()),
    ("envoy-tcp-tls", "Envoy tcp_proxy (role L4 mode), TLS keep-alive", "envoy", "tcp", (),
     {"target": "tls"}),
    ("envoy-tls", "Envoy TLS port (TLS inspector + tcp_proxy), TLS keep-alive", "envoy", "tls", (),
     {"target": "tls"}),
    ("haproxy-http", "HAProxy HTTP", "haproxy", "http", ()),
    ("haproxy-tcp", "HAProxy TCP", "haproxy", "tcp", ()),
)


# Counted with valgrind's cache and branch simulation too (misses per request: why the same
# instructions cost more on one machine than another).
CACHE_SIMULATED = ("envoy-role", "envoy-tcp", "haproxy-http")


def profiled_proxies(knob_sets):
    """PROFILED as Proxy objects; knob_sets names the knobs of "tuned" and "lean"."""
    proxies = []
    for i, (name, _label, engine, mode, knobs, *extra) in enumerate(PROFILED):
        knobs = tuple(knob_sets.get(knobs, ())) if isinstance(knobs, str) else knobs
        proxies.append(Proxy(name, engine, 4980 - i, mode=mode, knobs=knobs, concurrency=1,
                             admin_port=19040 + i if engine == "envoy" else 0,
                             **(extra[0] if extra else {})))
    return proxies


def profiled_label(name):
    return next(entry[1] for entry in PROFILED if entry[0] == name)


def proxy(name):
    return next(p for p in PROXIES if p.name == name)
