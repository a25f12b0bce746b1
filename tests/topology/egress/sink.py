"""The web host's side of test_egress_probes.py: what reaches the web host besides httpbin.

    sink.py EVENTS --tcp PORT... --udp PORT... [--hold PORT...]

Each TCP port (IPv4 and IPv6) accepts, sends `tcp-ok PORT`, closes (a --hold port: keeps the
connection until the client closes it); each UDP port answers a
datagram with `udp-ok PORT TOKEN`. Every connection and datagram is appended to EVENTS as a JSON
line {proto, port, local, token}, so the test can tell a dropped probe from a lost answer.
"""

import argparse
import pathlib
import socket
import sys
import threading

# test_policy.py's servers: the same event file and threads.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "policy"))
from servers import record, run_threads  # noqa: E402  pylint: disable=wrong-import-position


def listener(family, kind, port):
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    if kind == socket.SOCK_STREAM:
        sock.listen(64)
    return sock


def serve_tcp(sock, port, events, lock, hold=False):
    while True:
        conn, _peer = sock.accept()
        record(events, lock, proto="tcp", port=port, local=conn.getsockname()[0])
        if hold:
            threading.Thread(target=greet, args=(conn, port, True), daemon=True).start()
        else:
            greet(conn, port, False)


def greet(conn, port, hold):
    try:
        conn.sendall(b"tcp-ok %d\n" % port)
        while hold and conn.recv(4096):
            pass
    except OSError:
        pass
    conn.close()


def serve_udp(sock, port, events, lock):
    while True:
        data, peer = sock.recvfrom(2048)
        token = data.decode("ascii", "replace")
        # The token names the probe (and so the address it was sent to).
        record(events, lock, proto="udp", port=port, token=token)
        sock.sendto(b"udp-ok %d %s" % (port, data), peer)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("events")
    parser.add_argument("--tcp", type=int, nargs="*", default=[])
    parser.add_argument("--udp", type=int, nargs="*", default=[])
    parser.add_argument("--hold", type=int, nargs="*", default=[])
    args = parser.parse_args()
    lock = threading.Lock()
    run_threads([(target, (listener(family, kind, port), port, args.events, lock) + extra)
                 for family in (socket.AF_INET, socket.AF_INET6)
                 for kind, ports, target, extra in ((socket.SOCK_STREAM, args.tcp, serve_tcp, ()),
                                                    (socket.SOCK_STREAM, args.hold, serve_tcp, (True,)),
                                                    (socket.SOCK_DGRAM, args.udp, serve_udp, ()))
                 for port in ports])


if __name__ == "__main__":
    main()
