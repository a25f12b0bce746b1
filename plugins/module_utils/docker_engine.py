# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read a container's state from the Docker engine's API on its unix socket, with the stdlib only.

No Docker SDK, no requests: a read-only probe must run on a host that has only Python and the
engine. The answer has the shape of community.docker.docker_container_info (exists, container).
"""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import quote


class DockerEngineError(Exception):
    """The engine could not be reached or gave an answer we cannot use."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path, timeout):
        super().__init__('localhost', timeout=timeout)
        self._socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _get(socket_path, path, timeout):
    """(status, body) of GET path; raises DockerEngineError when the engine does not answer."""
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request('GET', path)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise DockerEngineError('cannot reach the Docker engine at %s: %s' % (socket_path, exc)) from exc
    finally:
        conn.close()


def container_info(socket_path, name, timeout=60):
    """{'exists': bool, 'container': inspect JSON or None}, as docker_container_info returns.

    The engine resolves name as `docker inspect` does: a name, an ID or a unique ID prefix.
    """
    status, body = _get(socket_path, '/containers/%s/json' % quote(name, safe=''), timeout)
    if status == 404:
        return {'exists': False, 'container': None}
    text = body.decode('utf-8', errors='replace')
    if status != 200:
        raise DockerEngineError('the Docker engine at %s answered %d to the inspection of container %s: %s'
                                % (socket_path, status, name, text.strip()))
    try:
        container = json.loads(text)
    except ValueError as exc:
        raise DockerEngineError('the Docker engine at %s answered the inspection of container %s with '
                                'something that is not JSON: %s' % (socket_path, name, exc)) from exc
    return {'exists': True, 'container': container}
