"""A raw HTTP/1 server for the transparency tests: standard library only, no header normalising.

Every request it reads is echoed back byte for byte as the response body, so the client sees the
request exactly as the server received it. The request path picks how the response is framed:

  /upgrade...   101 Switching Protocols (mixed-case headers), then every byte read is echoed back
  /close...     close-delimited body (no Content-Length, connection closed after it)
  /chunked...   chunked body, three chunks
  /slow...      Content-Length body sent in 3 parts over 1.2 s (or ?seconds=N)
  anything else Content-Length body

A request with `Expect: 100-continue` gets an interim 100 first. Every response carries `Date`,
`Server: rawecho/1` and `X-Mixed-Case: Yes` (case both ways), and `Connection: close` when the
server closes after it (HTTP/1.0, or the client asked).
Usage: rawecho.py ADDRESS PORT [PORT...]   (runs until killed)
"""

import socket
import sys
import threading
import time
from email.utils import formatdate

HEAD_LIMIT = 64 * 1024  # larger request heads get 431, like a real server's limit


def read_head(conn, buf):
    while b"\r\n\r\n" not in buf:
        if len(buf) > HEAD_LIMIT:
            return None, buf
        data = conn.recv(65536)
        if not data:
            return None, buf
        buf += data
    head, _sep, rest = buf.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def header(head, name):
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip()
    return None


def read_exact(conn, buf, n):
    while len(buf) < n:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
    return buf[:n], buf[n:]


def read_line(conn, buf):
    """One CRLF-terminated line (without the CRLF) and what follows it; None at end of stream."""
    while b"\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, buf
        buf += data
    line, _sep, rest = buf.partition(b"\r\n")
    return line, rest


def read_chunked(conn, buf):
    """The raw chunked body (sizes, extensions and trailers included) and what follows it."""
    body = b""
    while True:
        line, buf = read_line(conn, buf)
        if line is None:
            return body + buf, b""
        body += line + b"\r\n"
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while line:  # trailers, up to the empty line
                line, buf = read_line(conn, buf)
                if line is None:
                    return body + buf, b""
                body += line + b"\r\n"
            return body, buf
        chunk, buf = read_exact(conn, buf, size + 2)
        body += chunk


def respond(conn, head, body, version, closing=False):
    path = head.split(b" ")[1] if head.count(b" ") >= 2 else b"/"
    request = head + body
    common = b"Date: " + formatdate(usegmt=True).encode() + b"\r\nServer: rawecho/1\r\nX-Mixed-Case: Yes\r\n"
    if closing and not path.startswith(b"/close"):
        common += b"Connection: close\r\n"
    if path.startswith(b"/upgrade") and header(head, b"upgrade"):
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + header(head, b"upgrade")
                     + b"\r\nConnection: Upgrade\r\n" + common + b"\r\n")
        conn.sendall(request)
        while True:
            data = conn.recv(65536)
            if not data:
                return False
            conn.sendall(data)
    if path.startswith(b"/close"):
        conn.sendall(version + b" 200 OK\r\n" + common + b"Connection: close\r\n\r\n" + request)
        return False
    if path.startswith(b"/chunked"):
        third = max(1, len(request) // 3)
        parts = [request[:third], request[third:2 * third], request[2 * third:]]
        out = version + b" 200 OK\r\n" + common + b"Transfer-Encoding: chunked\r\n\r\n"
        for part in filter(None, parts):
            out += b"%x\r\n" % len(part) + part + b"\r\n"
        conn.sendall(out + b"0\r\n\r\n")
        return True
    if path.startswith(b"/slow"):
        seconds = float(path.partition(b"seconds=")[2] or b"1.2")
        conn.sendall(version + b" 200 OK\r\n" + common + b"Content-Length: %d\r\n\r\n" % len(request))
        third = max(1, -(-len(request) // 3))
        for start in range(0, len(request), third):
            time.sleep(seconds / 3)
            conn.sendall(request[start:start + third])
        return True
    conn.sendall(version + b" 200 OK\r\n" + common + b"Content-Length: %d\r\n\r\n" % len(request) + request)
    return True


def serve(conn):
    buf = b""
    try:
        while True:
            head, buf = read_head(conn, buf)
            if head is None:
                if len(buf) > HEAD_LIMIT:
                    conn.sendall(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n")
                return
            version = b"HTTP/1.0" if head.split(b"\r\n")[0].endswith(b"HTTP/1.0") else b"HTTP/1.1"
            if (header(head, b"expect") or b"").lower() == b"100-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if (header(head, b"transfer-encoding") or b"").lower() == b"chunked":
                body, buf = read_chunked(conn, buf)
            else:
                body, buf = read_exact(conn, buf, int(header(head, b"content-length") or 0))
            closing = version == b"HTTP/1.0" or (header(head, b"connection") or b"").lower() == b"close"
            keep = respond(conn, head, body, version, closing)
            if not keep or closing:
                return
    except (OSError, ValueError):
        return
    finally:
        conn.close()


def listen(address, port):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(128)
    while True:
        conn, _peer = sock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main(argv):
    address, ports = argv[1], [int(p) for p in argv[2:]]
    for port in ports[1:]:
        threading.Thread(target=listen, args=(address, port), daemon=True).start()
    listen(address, ports[0])


if __name__ == "__main__":
    main(sys.argv)
