"""See and decide (issue 16): the access log, the allow/deny policy, TLS by SNI and the metrics listener.

The web host runs, beside httpbin on :80, TLS servers on :443 and :8443 (a self-signed certificate
for www.example.com and api.example.net) and server-first TCP servers on :8081 and :8082
(policy/servers.py, in the web host's network only), which record every connection they accept.
The client sends real traffic with curl --resolve. Three site.yml runs: the policy enforced (access
log to a file, metrics on), the same policy in monitor mode (a change that must not restart Envoy),
then the defaults again for the modules that follow.
"""

import datetime
import json
import pathlib
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import ADDR, assert_ok, holder, playbook, sh
from polling import wait_until

HERE = pathlib.Path(__file__).resolve().parent / "policy"
LOG = "/var/lib/tproxy-envoy-log/access.log"
DEFAULT_LOG = "/var/log/tproxy-envoy/access.log"  # router_access_log's default
LOGROTATE = "/etc/logrotate.d/tproxy-envoy"
TLS_PORTS, GREET_PORTS = [443, 8443], [8081, 8082]
METRICS_PORT = 9102
POLICY = [
    {"name": "no-8443", "action": "deny", "ports": [8443]},
    {"name": "blocked-host", "action": "deny", "hosts": ["blocked.example.com"]},
    {"name": "names", "action": "allow", "hosts": ["www.example.com", "*.example.net"]},
    {"name": "web-8082", "action": "deny", "networks": ["192.0.2.180/32"], "ports": [8082]},
    {"name": "lab-net", "action": "allow", "networks": ["192.0.2.0/24"], "ports": [8081, 8082]},
]


def site_vars(mode):
    return json.dumps({
        "router_intercept_ports": [80],
        "router_intercept_l4_ports": GREET_PORTS,
        "router_intercept_tls_ports": TLS_PORTS,
        "router_access_log": LOG,
        "router_metrics_address": ADDR["router"],
        "router_metrics_port": METRICS_PORT,
        "router_policy": POLICY,
        "router_policy_default": "deny",
        "router_policy_mode": mode,
    })


def certificate(directory):
    """A self-signed certificate for two names (the server's key and chain in PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.example.com"),
                                                        x509.DNSName("api.example.net")]), critical=False)
            .sign(key, hashes.SHA256()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return directory / "cert.pem", directory / "key.pem"


# --- traffic from the client -------------------------------------------------------------------

def http(host, path):
    """curl to the web host's port 80 with `host` as its Host header: (status, body)."""
    out = sh("client", "curl -sS --max-time 10 -o /dev/stdout -w '\\n%%{http_code}' -H 'Host: %s' http://%s%s"
             % (host, ADDR["web"], path), check=False).stdout
    body, _sep, status = out.rpartition("\n")
    return int(status or 0), body


def tls(name, port):
    """curl over TLS with SNI `name` (None: by address, so no SNI): (curl's exit code, body)."""
    web = ADDR["web"]
    if name is None:
        url = "https://%s:%d/" % (web, port)
    else:
        url = "--resolve %s:%d:%s https://%s:%d/" % (name, port, web, name, port)
    proc = sh("client", "curl -sk --max-time 10 %s" % url, check=False)
    return proc.returncode, proc.stdout


def greeting(port):
    """What a plain TCP connection to the web host's `port` receives (the server speaks first)."""
    return sh("client", "timeout 5 bash -c 'cat < /dev/tcp/%s/%d'" % (ADDR["web"], port), check=False).stdout


def client_curl(url):
    proc = sh("client", "curl -sS --max-time 5 -o /dev/null -w '%%{http_code}' %s" % url, check=False)
    return proc.returncode, proc.stdout


def metrics():
    proc = sh("client", "curl -sS --max-time 5 http://%s:%d/stats/prometheus" % (ADDR["router"], METRICS_PORT),
              check=False)
    return proc.returncode, proc.stdout


# --- what the router and the servers saw --------------------------------------------------------

def log_lines(path=LOG):
    out = sh("router", "cat %s 2>/dev/null" % path, check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def logged_all_traffic(lines):
    """Whether traffic()'s 4 requests, 5 TLS and 2 L4 connections each have their line."""
    paths = {line["path"] for line in lines if line["mode"] == "http"}
    modes = [line["mode"] for line in lines]
    return ({"/anything/t16-%s" % p for p in ("www", "api", "blocked", "address")} <= paths
            and modes.count("tls") >= 5 and modes.count("l4") >= 2)


def wait_for_traffic(path=LOG):
    """Envoy writes its access log in batches (every 10 s at the latest), and site.yml's verify requests
    are logged too, so a count of lines can be reached before traffic()'s last line: wait for each of them."""
    wait_until(lambda: logged_all_traffic(log_lines(path)), 30, 1.0)
    return log_lines(path)


def envoy_process():
    return sh("router", "docker inspect -f '{{.State.Pid}} {{.State.StartedAt}}' tproxy-envoy").stdout.strip()


def rbac_stats():
    """Port 80's RBAC counters: denied (enforced) and shadow_denied (the policy's verdict, both modes)."""
    out = sh("router", "curl -s 'http://127.0.0.1:19000/stats?filter=http.tproxy_80.rbac.'").stdout
    return {k.rpartition(".")[2]: int(v) for k, _s, v in (line.partition(": ") for line in out.splitlines()) if v}


def accepted(events):
    return [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []


def traffic(events):
    """The same requests in each mode; what the client got and which connections the servers accepted."""
    before = len(accepted(events))
    seen = {
        "http_www": http("www.example.com", "/anything/t16-www"),
        "http_api_port": http("api.example.net:80", "/anything/t16-api"),
        "http_blocked": http("blocked.example.com", "/anything/t16-blocked"),
        "http_by_address": http(ADDR["web"], "/anything/t16-address"),
        "tls_www": tls("www.example.com", 443),
        "tls_api": tls("api.example.net", 443),
        "tls_other": tls("other.example.org", 443),
        "tls_no_sni": tls(None, 443),
        "tls_www_8443": tls("www.example.com", 8443),
        "greet_8081": greeting(8081),
        "greet_8082": greeting(8082),
    }
    time.sleep(0.5)
    seen["accepted"] = accepted(events)[before:]
    return seen


def line_for(lines, **want):
    found = [line for line in lines if all(line.get(k) == v for k, v in want.items())]
    assert len(found) == 1, (want, lines)
    return found[0]


@pytest.fixture(scope="module")
def runs(lab, tmp_path_factory):
    directory = tmp_path_factory.mktemp("policy")
    cert, key = certificate(directory)
    events = directory / "events.jsonl"
    # Only the web host's network: the servers read the certificate from this controller's files.
    servers = subprocess.Popen(["nsenter", "-t", holder("web"), "-n", "--", sys.executable, str(HERE / "servers.py"),
                                lab["web"], str(cert), str(key), str(events), "--tls", *map(str, TLS_PORTS),
                                "--greet", *map(str, GREET_PORTS)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {}
    try:
        ports = TLS_PORTS + GREET_PORTS
        listening = wait_until(lambda: len(sh("web", "ss -Hltn '( %s )'" % " or ".join(
            "sport = :%d" % p for p in ports)).stdout.strip().splitlines()) >= len(ports), 20, 0.2)
        assert listening, "policy/servers.py did not listen on %s (test setup)" % ports

        # test_monitoring logs to the same file: start from an empty one. Emptied, not removed: Envoy
        # may still hold it open (it appends), and a file made here would be root's, not Envoy's user's.
        sh("router", "[ ! -e {0} ] || : > {0}; rm -f {0}.1".format(LOG))
        started = time.monotonic()
        assert_ok(playbook("site", "-e", site_vars("enforce")))
        enforce = traffic(events)
        enforce["metrics"] = metrics()
        enforce["metrics_other_path"] = client_curl("http://%s:%d/stats" % (ADDR["router"], METRICS_PORT))
        enforce["admin_from_client"] = client_curl("http://%s:19000/stats" % ADDR["router"])
        enforce["log"] = wait_for_traffic()
        enforce["process"] = envoy_process()
        enforce["rbac"] = rbac_stats()
        result["enforce"] = enforce

        # The role's logrotate snippet, run for real (forced): it moves the file away and its
        # postrotate tells Envoy (SIGUSR1) to reopen the log by path.
        enforce["logrotate"] = sh("router", "logrotate -v -f -s /tmp/tproxy-test-logrotate.state %s 2>&1"
                                  % LOGROTATE, check=False)
        assert_ok(playbook("site", "-e", site_vars("monitor")))
        rbac_before = rbac_stats()
        monitor = traffic(events)
        monitor["rbac_before"] = rbac_before
        monitor["process"] = envoy_process()
        monitor["log"] = wait_for_traffic()
        monitor["rotated"] = log_lines(LOG + ".1")
        monitor["rbac"] = rbac_stats()
        result["monitor"] = monitor

        assert_ok(playbook("site"))
        defaults = {"process": envoy_process(), "http": http("www.example.com", "/anything/t16-defaults"),
                    "metrics": metrics(),
                    "log_config": json.loads(sh("router", "docker inspect -f '{{json .HostConfig.LogConfig}}' "
                                                "tproxy-envoy").stdout)}
        # Envoy writes its file log in batches, at least every 10 s.
        wait_until(lambda: any("t16-defaults" in (line["path"] or "") for line in log_lines(DEFAULT_LOG)), 30, 1.0)
        defaults["file"] = [line for line in log_lines(DEFAULT_LOG) if "t16-defaults" in (line["path"] or "")]
        defaults["logrotate"] = sh("router", "cat %s" % LOGROTATE, check=False).stdout
        result["defaults"] = defaults
        result["seconds"] = time.monotonic() - started
        yield result
    finally:
        servers.kill()
        servers.wait(timeout=30)
        if "defaults" not in result:
            playbook("site")


# --- enforce ----------------------------------------------------------------------------------

def test_http_is_allowed_or_denied_by_host_with_a_403_that_names_the_policy(runs):
    seen = runs["enforce"]
    assert seen["http_www"][0] == 200 and "t16-www" in seen["http_www"][1]
    assert seen["http_api_port"][0] == 200, "a wildcard host matches with a :port too"
    status, body = seen["http_blocked"]
    assert status == 403 and "router_policy" in body and "blocked-host" in body, body
    status, body = seen["http_by_address"]
    assert status == 403 and "default" in body, "no rule matches the address as Host: the default (deny)"


def test_tls_is_allowed_or_denied_by_sni_and_a_denied_connection_never_reaches_the_server(runs):
    seen = runs["enforce"]
    assert seen["tls_www"] == (0, "tls-ok 443 www.example.com\n")
    assert seen["tls_api"] == (0, "tls-ok 443 api.example.net\n")
    assert seen["tls_other"][0] != 0 and seen["tls_other"][1] == ""
    assert seen["tls_no_sni"][0] != 0, "a client without SNI matches no hosts rule: the default (deny)"
    assert seen["tls_www_8443"][0] != 0, "port 8443 is denied before the names rule"
    assert sorted((a["port"], a.get("sni")) for a in seen["accepted"] if a["port"] in TLS_PORTS) == [
        (443, "api.example.net"), (443, "www.example.com")]


def test_l4_is_allowed_or_denied_by_network_before_the_server_speaks(runs):
    seen = runs["enforce"]
    assert seen["greet_8081"] == "hello 8081\n"
    assert seen["greet_8082"] == ""
    assert [a["port"] for a in seen["accepted"] if a["port"] in GREET_PORTS] == [8081], \
        "the denied connection to 8082 must not even be opened to the server"


def test_the_access_log_carries_each_request_and_connection_with_the_decision(runs):
    lines = runs["enforce"]["log"]
    client, web = ADDR["client"], ADDR["web"]
    www = line_for(lines, path="/anything/t16-www")
    assert www["mode"] == "http" and www["method"] == "GET" and www["host"] == "www.example.com"
    assert (www["client_address"], www["destination_address"], www["destination_port"]) == (client, web, 80)
    assert isinstance(www["client_port"], int) and www["client_port"] > 1023
    assert www["status"] == 200 and www["bytes_sent"] > 0 and www["upstream"] == "%s:80" % web
    assert (www["policy_decision"], www["policy_rule"], www["policy_mode"]) == ("allowed", "names", "enforce")
    assert www["response_flags"] == "-" and isinstance(www["duration_ms"], int)
    blocked = line_for(lines, path="/anything/t16-blocked")
    assert (blocked["status"], blocked["policy_decision"], blocked["policy_rule"]) == (403, "denied", "blocked-host")
    assert blocked["upstream"] is None
    tls_www = line_for(lines, mode="tls", sni="www.example.com", destination_port=443)
    assert (tls_www["policy_decision"], tls_www["policy_rule"]) == ("allowed", "names")
    assert tls_www["bytes_received"] > 100 and tls_www["bytes_sent"] > 100 and tls_www["upstream"] == "%s:443" % web
    other = line_for(lines, mode="tls", sni="other.example.org")
    assert (other["policy_decision"], other["policy_rule"], other["upstream"]) == ("denied", "default", None)
    no_sni = [line for line in lines if line["mode"] == "tls" and line["sni"] is None]
    assert [(x["destination_port"], x["policy_rule"]) for x in no_sni] == [(443, "default")]
    port_8443 = line_for(lines, mode="tls", destination_port=8443)
    assert (port_8443["sni"], port_8443["policy_decision"], port_8443["policy_rule"]) == (
        "www.example.com", "denied", "no-8443")
    l4 = {line["destination_port"]: line for line in lines if line["mode"] == "l4"}
    assert (l4[8081]["policy_rule"], l4[8081]["policy_decision"], l4[8081]["bytes_sent"]) == ("lab-net", "allowed", 11)
    assert (l4[8082]["policy_rule"], l4[8082]["policy_decision"], l4[8082]["bytes_sent"]) == ("web-8082", "denied", 0)


def test_metrics_answer_the_client_on_their_own_listener_and_the_admin_interface_never(runs):
    seen = runs["enforce"]
    code, text = seen["metrics"]
    assert code == 0 and "# TYPE envoy_" in text, text[:500]
    assert 'envoy_tcp_downstream_cx_total{envoy_tcp_prefix="tproxy_tls_443_denied"} 2' in text, [
        line for line in text.splitlines() if "tproxy_tls" in line]
    assert seen["metrics_other_path"] == (0, "404")
    assert seen["admin_from_client"][0] == 7, "admin must refuse connections from the client: %s" % (
        seen["admin_from_client"],)


# --- monitor ----------------------------------------------------------------------------------

def test_monitor_mode_lets_everything_through_and_needs_no_restart(runs):
    seen = runs["monitor"]
    assert seen["process"] == runs["enforce"]["process"], "a policy change must not restart Envoy"
    assert seen["http_blocked"][0] == 200 and seen["http_by_address"][0] == 200
    assert seen["tls_other"] == (0, "tls-ok 443 other.example.org\n")
    assert seen["tls_no_sni"] == (0, "tls-ok 443 None\n")
    assert seen["tls_www_8443"] == (0, "tls-ok 8443 www.example.com\n")
    assert seen["greet_8082"] == "hello 8082\n"
    assert sorted(a["port"] for a in seen["accepted"]) == [443, 443, 443, 443, 8081, 8082, 8443]


def test_monitor_mode_logs_the_would_be_denials(runs):
    lines = runs["monitor"]["log"]
    assert {line["policy_mode"] for line in lines} == {"monitor"}
    blocked = line_for(lines, path="/anything/t16-blocked")
    assert (blocked["status"], blocked["policy_decision"], blocked["policy_rule"]) == (200, "denied", "blocked-host")
    port_8443 = line_for(lines, mode="tls", destination_port=8443)
    assert (port_8443["policy_decision"], port_8443["policy_rule"]) == ("denied", "no-8443")
    assert port_8443["bytes_received"] > 100 and port_8443["upstream"] == "%s:8443" % ADDR["web"]
    l4 = line_for(lines, mode="l4", destination_port=8082)
    assert (l4["policy_decision"], l4["policy_rule"], l4["bytes_sent"]) == ("denied", "web-8082", 11)
    enforced = runs["enforce"]["rbac"]
    assert (enforced["denied"], enforced["shadow_denied"]) == (2, 2), enforced
    before, after = runs["monitor"]["rbac_before"], runs["monitor"]["rbac"]
    assert after.get("shadow_denied", 0) - before.get("shadow_denied", 0) == 2, (before, after)
    assert after.get("denied", 0) - before.get("denied", 0) == 0, "monitor mode denies nothing"


def test_logrotate_rotates_the_access_log_and_envoy_reopens_it(runs):
    rotation = runs["enforce"]["logrotate"]
    assert rotation.returncode == 0, rotation.stdout
    rotated, fresh = runs["monitor"]["rotated"], runs["monitor"]["log"]
    assert len(rotated) == len(runs["enforce"]["log"]), "the rotated file keeps the enforce run's lines only"
    assert len(fresh) >= 11 and all(line["policy_mode"] == "monitor" for line in fresh)


# --- back to the defaults ---------------------------------------------------------------------

def test_the_defaults_log_to_a_rotated_file_and_serve_no_metrics(runs):
    seen = runs["defaults"]
    assert seen["http"][0] == 200
    assert len(seen["file"]) == 1 and seen["file"][0]["policy_decision"] == "allowed"
    assert seen["file"][0]["policy_rule"] == "default" and seen["file"][0]["host"] == "www.example.com"
    assert seen["logrotate"].splitlines()[1].strip() == DEFAULT_LOG + " {", "the default log file is rotated"
    assert seen["metrics"][0] == 7, "no metrics listener by default"
    assert seen["log_config"] == {"Type": "json-file", "Config": {"max-size": "100m", "max-file": "3"}}, \
        "the container's own log (Envoy's messages, or the access log with stdout) must be bounded"
    print("site.yml x3 and traffic: %.0f s" % runs["seconds"])
