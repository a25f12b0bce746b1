#!/bin/sh
# The "holder" of one lab host (started by tools/lab/lab.sh, never by hand):
#   nsenter --net=/run/netns/tproxy-HOST unshare --mount --uts --propagation private \
#     /bin/sh tools/lab/holder.sh HOST_DIR HOST [SHARED_PATH...]
# It runs in the host's network namespace and in a mount and UTS namespace of its own,
# gives the host its own /sys, /etc, /run, /tmp, /var/lib, /var/log and /usr/local/sbin, names it, then sleeps forever so
# that the connection plugin and dockerd can enter these namespaces by its PID.
set -eu
dir=$1
name=$2
shift 2

# The copied mount table still has the controller's /run/netns/* nsfs mounts. Left there
# (hidden under /run) they would keep the other lab hosts' network namespaces alive after
# `ip netns delete`, and `lab.sh reboot` could not recreate a host's veth.
umount -l /run/netns 2>/dev/null || true

# A sysfs of this network namespace, so /sys/class/net lists the host's interfaces (Ansible's
# facts read it); the cgroup tree is carried over because dockerd needs it.
sysfs="$dir/tmp/.sysfs"
mkdir -p "$sysfs"
mount -t sysfs "sysfs-$name" "$sysfs"
mount --rbind /sys/fs/cgroup "$sysfs/fs/cgroup"
mount --move "$sysfs" /sys
rmdir "$sysfs"

# SHARED_PATHs (the controller's Python venv, whose interpreter runs the modules) stay visible
# even when they lie under a path the host gets its own copy of, e.g. a clone in /tmp:
# bound into the host's directory first, they come along with the recursive bind below.
for shared in "$@"; do
  for covered in /etc /run /tmp /var/lib; do
    case $shared in
      "$covered"/*)
        inside="$dir/$(echo "${covered#/}" | tr / -)/${shared#"$covered"/}"
        mkdir -p "$inside"
        mount --bind "$shared" "$inside"
        ;;
    esac
  done
done

mount --rbind "$dir/etc" /etc
# Roles install their scripts in /usr/local/sbin; the rest of /usr is the controller's.
mount --bind "$dir/usr-local-sbin" /usr/local/sbin
# Log files the roles write (the router's access log) are the host's own.
mount --bind "$dir/var-log" /var/log
mount --rbind "$dir/run" /run
mount --rbind "$dir/tmp" /tmp
# Last: it hides $dir (under /var/lib/tproxy-lab) from this namespace.
mount --rbind "$dir/var-lib" /var/lib

hostname "$name"
exec sleep infinity
