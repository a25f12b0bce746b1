"""What the bench compares: the data paths, the proxies behind them, the targets.

A path is a rule set on the router (rules.path_rules kind) plus the proxy that gets the
connections. All bench proxies listen in the router's netns, on ports of their own, and
are started and stopped by the bench; `product` is the lab's own Envoy container.
"""

from dataclasses import dataclass, field

import lab

STATIC_PORT = 8080  # the bench's nginx in the web netns (httpbin holds :80)

TARGETS = {
    "static": {"port": STATIC_PORT, "url": f"http://{lab.WEB}:{STATIC_PORT}/",
               "label": "static nginx"},
    # One synchronous gunicorn worker: beyond 16 connections wrk only measures its queue.
    "httpbin": {"port": lab.HTTPBIN_PORT, "url": f"http://{lab.WEB}:{lab.HTTPBIN_PORT}/get",
                "label": "httpbin /get", "max_conns": 16},
}


@dataclass
class Proxy:
    name: str
    engine: str                   # envoy | haproxy
    port: int
    address: str = "127.0.0.1"
    mode: str = "http"            # http | tcp
    admin_port: int = 0           # Envoy only
    knobs: tuple = ()             # configs.KNOBS applied to the role's rendered config
    concurrency: int = 0          # Envoy --concurrency; 0 = the role's (all CPUs)
    evidence_headers: bool = False  # the role's router_envoy_evidence_headers (opt-in)


@dataclass
class Path:
    name: str
    label: str
    kind: str                     # rules.path_rules kind
    proxy: str = ""               # a Proxy name, "product", or "" (no proxy)
    targets: tuple = tuple(TARGETS)
    notes: list = field(default_factory=list)


# The role's config for TPROXY (b) and REDIRECT (c) alike, so (c) - (b) is the mechanism alone.
PROXIES = [
    Proxy("envoy-role", "envoy", 4998, admin_port=19001),
    Proxy("envoy-redirect", "envoy", 4996, address=lab.ROUTER, admin_port=19002),
    Proxy("haproxy-http", "haproxy", 4997),
    Proxy("envoy-tcp", "envoy", 4995, mode="tcp", admin_port=19003),
    Proxy("haproxy-tcp", "haproxy", 4994, mode="tcp"),
]

PATHS = [
    Path("direct", "(a) direct: router forwards", "direct"),
    Path("envoy-tproxy", "(b) TPROXY -> Envoy HTTP (role config)", "tproxy", "envoy-role"),
    Path("envoy-product", "(b') TPROXY -> the lab's Envoy container", "product", "product",
         targets=("httpbin",)),
    Path("envoy-redirect", "(c) nat REDIRECT -> Envoy HTTP (role config)", "redirect", "envoy-redirect"),
    Path("haproxy-http", "(d) TPROXY -> HAProxy HTTP", "tproxy", "haproxy-http"),
    Path("envoy-tcp", "(e) TPROXY -> Envoy tcp_proxy (role L4 mode)", "tproxy", "envoy-tcp"),
    Path("haproxy-tcp", "(e') TPROXY -> HAProxy TCP", "tproxy", "haproxy-tcp"),
]


def add_envoy_variant(name, knobs, concurrency, index, targets=tuple(TARGETS)):
    """An extra Envoy HTTP path behind the bench TPROXY rule (tuning candidates)."""
    port, admin = 4990 - index, 19010 + index
    PROXIES.append(Proxy(name, "envoy", port, admin_port=admin, knobs=tuple(knobs),
                         concurrency=concurrency))
    desc = ", ".join(knobs) or "role config"
    if concurrency:
        desc += f", --concurrency {concurrency}"
    PATHS.append(Path(name, f"(b+) TPROXY -> Envoy HTTP {name}: {desc}", "tproxy", name,
                      targets=targets))


# What the profile counts (tools/bench/instructions.py): each proxy with one worker, on ports of its own.
PROFILED = (
    ("envoy-role", "Envoy HTTP, role config", "envoy", "http", ()),
    ("envoy-evidence", "Envoy HTTP, role config + evidence headers (the default until 0.1)", "envoy", "http", ()),
    ("envoy-tuned", "Envoy HTTP, tuned knobs", "envoy", "http", "tuned"),
    ("envoy-lean", "Envoy HTTP, lean knobs", "envoy", "http", "lean"),
    ("envoy-generic", "Envoy generic_proxy HTTP/1 (bench only)", "envoy", "http",
     ("generic_proxy_http1",)),
    ("envoy-tcp", "Envoy tcp_proxy (role L4 mode)", "envoy", "tcp", ()),
    ("haproxy-http", "HAProxy HTTP", "haproxy", "http", ()),
    ("haproxy-tcp", "HAProxy TCP", "haproxy", "tcp", ()),
)


def profiled_proxies(knob_sets):
    """PROFILED as Proxy objects; knob_sets names the knobs of "tuned" and "lean"."""
    proxies = []
    for i, (name, _label, engine, mode, knobs) in enumerate(PROFILED):
        knobs = tuple(knob_sets.get(knobs, ())) if isinstance(knobs, str) else knobs
        proxies.append(Proxy(name, engine, 4980 - i, mode=mode, knobs=knobs, concurrency=1,
                             admin_port=19040 + i if engine == "envoy" else 0,
                             evidence_headers=name == "envoy-evidence"))
    return proxies


def profiled_label(name):
    return next(entry[1] for entry in PROFILED if entry[0] == name)


def proxy(name):
    return next(p for p in PROXIES if p.name == name)
