# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the router's JSON access log into answers ("learning mode").

Two filters live here, each documented in its own sidecar file (access_log_report.yml,
access_log_policy.yml): a report (top destinations, denied names, per-client totals) and a
router_policy that allows exactly the traffic the log shows.

The log is read tolerantly: lines that are not JSON objects (Envoy's own log lines in
``docker logs``, a truncated last line) are counted and skipped, fields this code does not know
are ignored, and a missing field counts as null, so a newer access log format still reads.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import re

from ansible.errors import AnsibleFilterError

MODES = ("http", "tls", "l4")
LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _records(log):
    """(entries, skipped): the log's JSON objects, from text, a list of lines or a list of dicts."""
    if isinstance(log, (bytes, bytearray)):
        log = log.decode("utf-8", "replace")
    if isinstance(log, str):
        log = log.splitlines()
    if not isinstance(log, (list, tuple)):
        raise AnsibleFilterError("the access log must be text, a list of lines or a list of dicts, got %s"
                                 % type(log).__name__)
    entries, skipped = [], 0
    for item in log:
        if isinstance(item, dict):
            entry = item
        else:
            text = str(item).strip()
            # `docker logs` may prefix nothing, but Envoy's own log lines start with '['.
            start = text.find("{")
            try:
                entry = json.loads(text[start:]) if start >= 0 else None
            except ValueError:
                entry = None
        if not isinstance(entry, dict) or entry.get("mode") not in MODES:
            skipped += 1
            continue
        entries.append(entry)
    return entries, skipped


def _port(entry):
    try:
        port = int(entry.get("destination_port"))
    except (TypeError, ValueError):
        return None
    return port if 1 <= port <= 65535 else None


def _address(value):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _host_name(entry):
    """The name the policy's ``hosts`` would see: Host without its port (HTTP), the SNI (TLS), else None.

    An address as Host or SNI is no name: a ``hosts`` rule never matches it (router_policy refuses
    addresses in ``hosts``), so such a request is learned by its destination address.
    """
    if entry.get("mode") == "http":
        host = entry.get("host")
        if not isinstance(host, str) or not host:
            return None
        if host.startswith("["):  # an IPv6 literal, [2001:db8::1]:80
            return None
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    elif entry.get("mode") == "tls":
        host = entry.get("sni")
        if not isinstance(host, str) or not host:
            return None
    else:
        return None
    host = host.lower().rstrip(".")
    labels = host.split(".")
    if len(host) > 253 or not all(LABEL.match(label) for label in labels) or _address(host) is not None:
        return None
    return host


def _destination(entry):
    """How a line's destination reads in a report: name:port where a name is known, else address:port."""
    name = _host_name(entry)
    where = name or str(entry.get("destination_address"))
    if ":" in where:
        where = "[%s]" % where
    return "%s:%s" % (where, entry.get("destination_port"))


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _top(counter, limit):
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"name": name, "count": count} for name, count in (ranked[:limit] if limit else ranked)]


def access_log_report(log, limit=20):
    """Top destinations, denied names and per-client totals of an access log (see the sidecar)."""
    entries, skipped = _records(log)
    destinations = collections.Counter(_destination(e) for e in entries)
    denied = collections.Counter()
    denied_rules = collections.defaultdict(set)
    clients = {}
    for entry in entries:
        if entry.get("policy_decision") == "denied":
            key = _destination(entry)
            denied[key] += 1
            denied_rules[key].add(str(entry.get("policy_rule")))
        client = str(entry.get("client_address"))
        totals = clients.setdefault(client, {"client": client, "count": 0, "denied": 0,
                                             "bytes_received": 0, "bytes_sent": 0})
        totals["count"] += 1
        totals["denied"] += entry.get("policy_decision") == "denied"
        totals["bytes_received"] += _int(entry.get("bytes_received"))
        totals["bytes_sent"] += _int(entry.get("bytes_sent"))
    denied_list = _top(denied, limit)
    for item in denied_list:
        item["rules"] = sorted(denied_rules[item["name"]])
    return {
        "entries": len(entries),
        "skipped": skipped,
        "modes": sorted({e.get("policy_mode") for e in entries if isinstance(e.get("policy_mode"), str)}),
        "top_destinations": _top(destinations, limit),
        "denied": denied_list,
        "clients": sorted(clients.values(), key=lambda c: (-c["count"], c["client"])),
    }


def _network(address):
    return "%s/%d" % (address, address.max_prefixlen)


def access_log_policy(log, include_denied=True, prefix="learned"):
    """A router_policy that allows exactly the traffic of ``log`` (see the sidecar)."""
    if not isinstance(prefix, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$", prefix):
        raise AnsibleFilterError("access_log_policy: prefix must be letters, digits, '.', '_' or '-', got %r"
                                 % (prefix,))
    entries, _skipped = _records(log)
    hosts = collections.defaultdict(set)     # port -> names (HTTP Host, TLS SNI)
    networks = collections.defaultdict(set)  # port -> addresses, where no name can match
    for entry in entries:
        if not include_denied and entry.get("policy_decision") == "denied":
            continue
        port = _port(entry)
        if port is None:
            continue
        name = _host_name(entry)
        if name is not None:
            hosts[port].add(name)
            continue
        address = _address(entry.get("destination_address"))
        if address is not None:
            networks[port].add(address)
    rules = []
    for port in sorted(set(hosts) | set(networks)):
        if hosts[port]:
            rules.append({"name": "%s-%d-hosts" % (prefix, port), "action": "allow",
                          "hosts": sorted(hosts[port]), "ports": [port]})
        if networks[port]:
            ordered = sorted(networks[port], key=lambda a: (a.version, a))
            rules.append({"name": "%s-%d-networks" % (prefix, port), "action": "allow",
                          "networks": [_network(a) for a in ordered], "ports": [port]})
    return rules


class FilterModule:
    def filters(self):
        return {"access_log_report": access_log_report, "access_log_policy": access_log_policy}
