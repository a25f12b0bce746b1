"""The web host's side of test_policy.py: TLS servers and server-first TCP servers.

    servers.py ADDRESS CERT KEY EVENTS --tls PORT... --greet PORT...

Each TLS port completes a handshake with CERT, reads one request and answers
`HTTP/1.0 200 OK` with a body naming the port and the SNI it got. Each greet port sends
`hello PORT` first (a server-first protocol), then closes. Every accepted connection is
appended to EVENTS as a JSON line {port, sni} (sni only for TLS), so the test can tell that a
denied connection never reached the server.
"""

import argparse
import json
import socket
import ssl
import threading


def record(events, lock, **event):
    with lock, open(events, "a", encoding="utf-8") as out:
        out.write(json.dumps(event) + "\n")


def run_threads(jobs):
    """Runs each (target, args) in a thread of its own, for ever (the test kills the process)."""
    threads = [threading.Thread(target=target, args=args, daemon=True) for target, args in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def serve_tls(listener, context, port, events, lock):
    while True:
        conn, _peer = listener.accept()
        seen = {}
        context.sni_callback = lambda sock, name, ctx, seen=seen: seen.update(sni=name)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(5)
                record(events, lock, port=port, sni=seen.get("sni"))
                tls.recv(65536)
                body = "tls-ok %d %s\n" % (port, seen.get("sni"))
                tls.sendall(("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
        except (OSError, ssl.SSLError):
            conn.close()


def serve_greeting(listener, port, events, lock):
    while True:
        conn, _peer = listener.accept()
        record(events, lock, port=port)
        try:
            conn.sendall(b"hello %d\n" % port)
        except OSError:
            pass
        conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("cert")
    parser.add_argument("key")
    parser.add_argument("events")
    parser.add_argument("--tls", type=int, nargs="*", default=[])
    parser.add_argument("--greet", type=int, nargs="*", default=[])
    args = parser.parse_args()
    lock = threading.Lock()
    jobs = []
    for port in args.tls + args.greet:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.address, port))
        listener.listen(64)
        if port in args.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(args.cert, args.key)
            target = serve_tls
            targs = (listener, context, port, args.events, lock)
        else:
            target = serve_greeting
            targs = (listener, port, args.events, lock)
        jobs.append((target, targs))
    run_threads(jobs)


if __name__ == "__main__":
    main()
