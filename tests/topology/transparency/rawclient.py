"""Send raw bytes to an HTTP/1 server and return exactly the bytes that came back.

As a program (run on the lab's client): reads a JSON list of cases on stdin
({"name", "send": [parts], "responses"}: strings whose code points are bytes, latin-1), sends each
case once to HOST:PORT_A and, at the same time, once to HOST:PORT_B, and prints a JSON list of
{"name", "a": {"bytes", "end"}, "b": {...}}.

The request is a list of parts: each part is sent, then what arrives is read until the
expected number of complete responses has come (framing parsed: Content-Length, chunked, close,
1xx interim responses and 101 counted apart), or the connection closes, or a deadline passes.
"""

import concurrent.futures
import json
import socket
import sys
import time


def _complete_responses(data):
    """(final responses parsed, interim 1xx parsed, bytes parsed) from the start of data."""
    finals = interims = 0
    pos = 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return finals, interims, pos
        head = data[pos:end]
        status_line = head.split(b"\r\n")[0].split(b" ")
        try:
            status = int(status_line[1])
        except (IndexError, ValueError):
            return finals, interims, pos
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            key, _sep, value = line.partition(b":")
            fields[key.strip().lower()] = value.strip()
        body_start = end + 4
        if 100 <= status < 200 and status != 101:
            interims += 1
            pos = body_start
            continue
        if status == 101:
            return finals + 1, interims, len(data)  # the rest is the upgraded protocol's
        if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            cur = body_start
            while True:
                nl = data.find(b"\r\n", cur)
                if nl < 0:
                    return finals, interims, pos
                size = int(data[cur:nl].split(b";")[0] or b"0", 16)
                cur = nl + 2
                if size == 0:
                    trailer_end = data.find(b"\r\n\r\n", cur - 2)
                    if trailer_end < 0:
                        return finals, interims, pos
                    pos = trailer_end + 4
                    break
                if len(data) < cur + size + 2:
                    return finals, interims, pos
                cur += size + 2
            finals += 1
            continue
        if b"content-length" in fields:
            length = int(fields[b"content-length"])
            if len(data) < body_start + length:
                return finals, interims, pos
            pos = body_start + length
            finals += 1
            continue
        if status in (204, 304):
            pos = body_start
            finals += 1
            continue
        return finals, interims, pos  # close-delimited: complete only at EOF


def exchange(host, port, parts, responses=1, timeout=8.0, settle=0.2):
    """Send each part; after the last, read until `responses` final responses are complete."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect((host, port))
    received = b""
    closed = False
    deadline = time.monotonic() + timeout
    try:
        for index, part in enumerate(parts):
            sock.sendall(part)
            last = index == len(parts) - 1
            wait_until = deadline if last else time.monotonic() + settle
            while time.monotonic() < wait_until:
                if last and _complete_responses(received)[0] >= responses:
                    break
                sock.settimeout(max(0.01, min(settle, wait_until - time.monotonic())))
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    closed = True
                    break
                received += data
            if closed:
                break
        # Whatever else arrives shortly after is part of the outcome too.
        sock.settimeout(settle)
        while not closed:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                closed = True
                break
            received += data
    except ConnectionResetError:
        return {"bytes": received, "end": "reset"}
    finally:
        sock.close()
    return {"bytes": received, "end": "closed" if closed else "open"}


def main(argv, cases):
    host, port_a, port_b = argv[1], int(argv[2]), int(argv[3])
    results = []
    # The two paths of a case at the same time: they share nothing (the router forwards one, Envoy
    # holds the other), and a case's time is mostly waiting for its deadline.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for case in cases:
            parts = [part.encode("latin-1") for part in case["send"]]
            outcome = {"name": case["name"]}
            futures = {key: pool.submit(exchange, host, port, parts, case.get("responses", 1))
                       for key, port in (("a", port_a), ("b", port_b))}
            for key, future in futures.items():
                got = future.result()
                outcome[key] = {"bytes": got["bytes"].decode("latin-1"), "end": got["end"]}
            results.append(outcome)
    return results


if __name__ == "__main__":
    print(json.dumps(main(sys.argv, json.load(sys.stdin))))
