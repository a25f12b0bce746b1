"""What the molecule scenarios check beyond playbooks/verify.yml (which they run first).

The roles' `verify` entry points prove each hop (forwarding, Envoy, rules, routes, the request
through Envoy). What Ansible cannot see is checked here: the capabilities and namespaces the
kernel gave the containers' processes, and what packets do (counters, refused connections,
forwarding of what is not intercepted). Each check reads the ports and rules it needs from the
hosts themselves, so no role default is repeated here.

Each takes testinfra hosts and the topology's addresses ({"client", "router", "web"}), so the
two scenarios prove the same things and only say how their hosts are reached.
"""

import re
import time

# Bits of the capability sets in /proc/PID/status (linux/capability.h).
CAP_NET_BIND_SERVICE = 1 << 10
CAP_NET_ADMIN = 1 << 12


def proc_status(text):
    """/proc/PID/status as a dict."""
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def assert_capabilities(status_text, allowed, required=0):
    """The process can never hold more than ``allowed`` (its bounding set: the container dropped
    everything else) and holds ``required`` now (its effective set)."""
    fields = proc_status(status_text)
    for name in ("CapBnd", "CapPrm", "CapEff", "CapAmb"):
        assert int(fields[name], 16) & ~allowed == 0, (name, fields[name])
    assert int(fields["CapEff"], 16) & required == required, fields["CapEff"]
    return fields


def assert_mount_read_only(mountinfo_text, target):
    """``target`` is mounted read-only in the process's mount namespace (kernel view)."""
    options = [line.split()[5].split(",") for line in mountinfo_text.splitlines() if line.split()[4] == target]
    assert options, "%s is not a mount point of the process" % target
    assert "ro" in options[-1], options[-1]


def tproxy_packets(router, save="iptables-save"):
    """Packets all TPROXY rules of the router have matched so far (kernel counters; ip6tables-save: IPv6's)."""
    out = router.check_output("%s -c -t mangle" % save)
    counts = [int(m.group(1)) for m in re.finditer(r"^\[(\d+):\d+\] -A \S+ .*-j TPROXY ", out, re.M)]
    assert counts, "no TPROXY rule on the router:\n" + out
    return sum(counts)


def request_packets_pass_the_tproxy_rule(client, router, addr, family="ipv4"):
    """A request from the client to the web server (at its address of ``family``, the addresses of that
    family in ``addr``) is matched by the router's TPROXY rule of that family."""
    save, host = ("ip6tables-save", "[%s]" % addr["web"]) if family == "ipv6" else ("iptables-save", addr["web"])
    before = tproxy_packets(router, save)
    result = client.run("curl -sS -o /dev/null --max-time 10 http://%s/get" % host)
    assert result.rc == 0, result.stderr
    assert tproxy_packets(router, save) > before


def direct_connections_to_the_router_are_refused(client, router, addr):
    """Nothing the router listens on, and no intercepted port, answers the client at the
    router's own address: the kernel refuses (RST) at once, Envoy is not reachable directly."""
    listening = {int(line.split()[3].rsplit(":", 1)[1]) for line in router.check_output("ss -Hltn").splitlines()}
    intercepted = {int(port) for port in re.findall(r"--dport (\d+) .*-j TPROXY ",
                                                    router.check_output("iptables-save -t mangle"))}
    assert listening and intercepted, (listening, intercepted)
    for port in sorted(listening | intercepted):
        result = client.run("curl -sS --max-time 5 http://%s:%d/" % (addr["router"], port))
        assert result.rc == 7, (port, result.rc, result.stderr)  # 7 = connection refused


def ports_not_intercepted_are_still_forwarded(client, web, addr):
    """A listener on another port of the web host answers through the router, without Envoy."""
    # setsid and no terminal: the server must outlive the command that starts it, whatever the
    # connection does with that command's session when it returns.
    web.check_output("setsid sh -c 'echo $$ > /tmp/http-8080.pid; exec python3 -m http.server 8080 --bind %s' "
                     "</dev/null >/dev/null 2>&1 &" % addr["web"])
    try:
        listening = False
        for _attempt in range(100):  # bounded: about 20 s at most
            listening = bool(web.run("ss -Hltn 'sport = :8080'").stdout.strip())
            if listening:
                break
            time.sleep(0.2)
        assert listening, "python3 -m http.server did not listen on %s:8080 (test setup)" % addr["web"]
        route = client.check_output("ip -4 route get %s" % addr["web"])
        assert "via %s " % addr["router"] in route, route  # through the router, not around it
        result = client.run("curl -sS -i --max-time 10 http://%s:8080/" % addr["web"])
        assert result.rc == 0, result.stderr
        assert result.stdout.startswith("HTTP/1.0 200")
        assert "server: envoy" not in result.stdout.lower()
    finally:
        web.run("kill $(cat /tmp/http-8080.pid) && rm -f /tmp/http-8080.pid")
