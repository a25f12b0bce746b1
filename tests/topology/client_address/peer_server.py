"""The web host's side of test_client_address.py: a TCP server that names its peer.

    peer_server.py ADDRESS PORT

Every accepted connection gets one line, the peer's address, then is closed: on an L4 port the
test reads which address Envoy's upstream connection came from.
"""

import socket
import sys


def main():
    address, port = sys.argv[1], int(sys.argv[2])
    listener = socket.create_server((address, port), reuse_port=False)
    while True:
        conn, peer = listener.accept()
        with conn:
            conn.sendall(("%s\n" % peer[0]).encode())


if __name__ == "__main__":
    main()
