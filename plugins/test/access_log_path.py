# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test: is a path fit for Envoy's access log file (documented in access_log_path.yml)?

The router role mounts the file's directory into Envoy's container and gives it to Envoy's user, so
that directory must be one of the log's own: never a system directory, nor a directory that holds
everyone's files (/var/log, /tmp, a home).
"""

from __future__ import annotations

import re

_FORM = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
# Directories whose subtree is the system's: nothing under them may be handed to Envoy's user.
_SYSTEM_TREES = re.compile(r"^/(etc|usr|bin|sbin|lib|lib32|lib64|libx32|boot|dev|proc|sys|run|root|snap)(/|$)")
# Directories that hold other files (the log needs one of its own inside them).
_SHARED = {"/var", "/var/log", "/var/lib", "/var/tmp", "/var/cache", "/var/spool", "/var/mail", "/var/opt",
           "/var/backups", "/var/local", "/home", "/tmp", "/srv", "/opt", "/mnt", "/media"}


def access_log_path(value):
    """True when ``value`` is an absolute file path whose directory can be the access log's own."""
    if not isinstance(value, str) or not _FORM.match(value) or re.search(r"/\.\.?(/|$)", value):
        return False
    directory = value.rsplit("/", 1)[0]
    # A top-level directory (/, /data) is the file system's own.
    if directory.count("/") < 2 or _SYSTEM_TREES.match(directory) or directory in _SHARED:
        return False
    # A user's home (/home/NAME) is theirs.
    return not re.match(r"^/home/[^/]+$", directory)


class TestModule:
    """tproxy.envoy access log path test."""

    def tests(self):
        return {"access_log_path": access_log_path}
