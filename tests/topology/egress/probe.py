"""The client's side of test_egress_probes.py: raw probes of what the router lets through.

    probe.py < PROBES_JSON

PROBES_JSON (on standard input) is a list of {id, kind, addr, ...}; all run at once, each bounded by a deadline, and
the result is one JSON object {id: outcome} on stdout:

- tcp {port}: "open" (connected and read the server's greeting), "refused", or "blocked" (no answer)
- udp {port}: "open" (the server's echo of our token came back) or "blocked"
- icmp: an echo request on a raw socket (ICMP or ICMPv6); "open" (the echo reply came back) or "blocked"
- linger {port, seconds}: a connection held open after the server's greeting; [greeting, local port]
- hold {port, count}: opens count connections at once and holds them; how many were accepted
- watch {port, stop_file, seconds}: a connection held open after the server's greeting until stop_file exists
  (at most seconds); [greeting, the time.time() at which it was closed by the other side, or null]
- http {port, request}: the exact request bytes (latin-1 in JSON) on a plain socket; the response's
  status code, and its body's first 200 bytes, or 0 when none came
"""

import json
import os
import select
import socket
import struct
import sys
import threading
import time

DEADLINE = 3.0


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def connected(p):
    """A TCP connection to the probe's address and port, DEADLINE on each operation (closed if it fails)."""
    sock = socket.socket(family(p["addr"]), socket.SOCK_STREAM)
    sock.settimeout(DEADLINE)
    try:
        sock.connect((p["addr"], p["port"]))
    except OSError:
        sock.close()
        raise
    return sock


def probe_tcp(p):
    try:
        with connected(p) as sock:
            return "open" if sock.recv(64).startswith(b"tcp-ok") else "no greeting"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "blocked"


def probe_udp(p):
    sock = socket.socket(family(p["addr"]), socket.SOCK_DGRAM)
    token = p["id"].encode()
    try:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            sock.sendto(token, (p["addr"], p["port"]))
            ready, _w, _x = select.select([sock], [], [], 0.5)
            if ready:
                data = sock.recv(2048)
                if data.endswith(b" " + token):
                    return "open"
        return "blocked"
    finally:
        sock.close()


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def probe_icmp(p):
    v6 = family(p["addr"]) == socket.AF_INET6
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                         socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    ident = (os.getpid() + threading.get_ident()) & 0xFFFF
    request_type, reply_type = (128, 129) if v6 else (8, 0)
    payload = p["id"].encode()
    header = struct.pack("!BBHHH", request_type, 0, 0, ident, 1)
    # The kernel fills in ICMPv6's checksum (it needs the pseudo-header); ICMP's is ours.
    checksum = 0 if v6 else _checksum(header + payload)
    packet = struct.pack("!BBHHH", request_type, 0, checksum, ident, 1) + payload
    try:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            sock.sendto(packet, (p["addr"], 0))
            ready, _w, _x = select.select([sock], [], [], 0.5)
            while ready:
                data, peer = sock.recvfrom(2048)
                # An IPv4 raw socket gets the IP header too; an IPv6 one does not.
                message = data if v6 else data[(data[0] & 0x0F) * 4:]
                if (peer[0] == p["addr"] and len(message) >= 8 and message[0] == reply_type
                        and struct.unpack("!H", message[4:6])[0] == ident and message[8:] == payload):
                    return "open"
                ready, _w, _x = select.select([sock], [], [], 0)
        return "blocked"
    finally:
        sock.close()


def probe_http(p):
    try:
        with connected(p) as sock:
            sock.sendall(p["request"].encode("latin-1"))
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return [0, ""]
    head, _sep, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/") else b"0"
    return [int(status), body[:200].decode("latin-1")]


def _greeted(p):
    """A connection to the probe's server and its greeting (the socket stays open)."""
    sock = connected(p)
    try:
        return sock, sock.recv(64).decode("latin-1")
    except OSError:
        sock.close()
        raise


def probe_linger(p):
    """A connection that stays open `seconds` after the server's greeting: [greeting, our port]."""
    try:
        sock, greeting = _greeted(p)
    except OSError as error:
        return [str(error), 0]
    with sock:
        time.sleep(p["seconds"])
        return [greeting, sock.getsockname()[1]]


def probe_watch(p):
    """A connection held open until the test says stop: [greeting, when it was closed, or None]."""
    try:
        sock, greeting = _greeted(p)
    except OSError as error:
        return [str(error), None]
    with sock:
        end = time.monotonic() + p["seconds"]
        while time.monotonic() < end and not os.path.exists(p["stop_file"]):
            readable, _w, _x = select.select([sock], [], [], 0.1)
            if readable:
                try:
                    data = sock.recv(64)
                except OSError:
                    data = b""
                if not data:
                    return [greeting, time.time()]
        return [greeting, None]


def probe_hold(p):
    """Opens `count` connections at once and holds them: how many were accepted within the deadline."""
    socks = [socket.socket(family(p["addr"]), socket.SOCK_STREAM) for _number in range(p["count"])]
    try:
        for sock in socks:
            sock.setblocking(False)
            sock.connect_ex((p["addr"], p["port"]))
        connected = set()
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and len(connected) < len(socks):
            _r, writable, _x = select.select([], [s for s in socks if s not in connected], [], 0.2)
            connected.update(s for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
        return len(connected)
    finally:
        for sock in socks:
            sock.close()


def main():
    probes = json.load(sys.stdin)
    results = {}

    def run(p):
        results[p["id"]] = globals()["probe_" + p["kind"]](p)

    threads = [threading.Thread(target=run, args=(p,)) for p in probes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
