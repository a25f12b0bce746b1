#!/bin/sh
# nsenter for the reboot test's booted hosts (tests/reboot/booted: ansible_netns_nsenter_path).
# The tproxy.envoy.netns connection enters a host's mount, network and UTS namespaces; a booted
# host's systemd also wants its callers in its PID namespace: from outside it, systemctl gets
# "Transport endpoint is not connected" and the netstate role could not enable its unit.
# So enter the PID and IPC namespaces of the same target too, as a login on that host would be.
exec nsenter --pid --ipc "$@"
