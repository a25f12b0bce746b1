"""access_log_path: a log file's directory is handed to Envoy's user, so it must be the log's own."""

import pytest

from ansible_collections.tproxy.envoy.plugins.test.access_log_path import access_log_path


@pytest.mark.parametrize("path", [
    "/var/log/tproxy-envoy/access.log", "/var/lib/tproxy-envoy-log/access.log", "/srv/envoy/access.log",
    "/data/envoy/envoy.log", "/home/alice/logs/envoy.log",
])
def test_a_directory_of_the_logs_own_is_accepted(path):
    assert access_log_path(path)


@pytest.mark.parametrize("path", [
    "/access.log", "/etc/access.log", "/etc/envoy/access.log", "/usr/local/envoy/access.log", "/boot/x.log",
    "/proc/self/x", "/sys/x/y.log", "/run/envoy/x.log", "/root/x.log", "/lib64/x.log", "/bin/x.log",
    "/var/log/access.log", "/var/lib/access.log", "/tmp/access.log", "/var/tmp/a.log", "/home/alice/envoy.log",
    "/srv/access.log", "/opt/access.log", "/var/access.log", "/data/envoy.log",
    "relative/access.log", "/var/log/../etc/x.log", "/var/log/./x/a.log", "/var/log/x y/a.log", "", None, 7,
])
def test_a_system_or_shared_directory_or_a_bad_form_is_refused(path):
    assert not access_log_path(path)
