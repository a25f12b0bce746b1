#!/usr/bin/env bash
# Hosts that really boot, for the reboot test (tests/reboot/test_reboot.py; design §5, "A real
# reboot"): a Debian bookworm root file system booted by systemd-nspawn with systemd as PID 1,
# inside a network namespace that is made anew for every boot, so that nothing of the kernel's
# network state (rules, routes, sysctls) survives a reboot, while the root file system (the disk)
# does.
#
#   boot.sh build                                 the cached root file system tarball (warm: no-op)
#   boot.sh install DIR NAME ADDRESS/LEN [standin] DIR/rootfs from the tarball, named NAME, eth0 with
#                                                 ADDRESS/LEN by systemd-networkd; "standin": a
#                                                 docker.service stand-in (see below)
#   boot.sh boot DIR NETNS LAN_NETNS ADDRESS      a fresh NETNS (eth0 on the bridge br0 of LAN_NETNS,
#                                                 its MAC derived from ADDRESS), then boot DIR/rootfs
#                                                 in it; DIR/init.pid gets the host PID of its PID 1
#   boot.sh poweroff DIR NETNS                    SIGRTMIN+4 to PID 1 (systemd's poweroff), wait until
#                                                 systemd-nspawn is gone, delete NETNS
#   boot.sh engine-start DIR NETNS                the router's Docker engine (below) in NETNS
#   boot.sh engine-stop DIR                       stop it as a shutdown does (restart policies apply
#                                                 at its next start), then its holder
#
# The router's Docker engine. Debian's dockerd cannot run inside the booted root here: this
# machine has cgroup v1, which systemd-nspawn mounts read-only in the container, so runc cannot
# create a container's cgroup ("mkdir /sys/fs/cgroup/cpuset/docker: read-only file system"; binding
# writable cgroup directories in does not help: nspawn mounts its read-only hierarchy over them).
# So the router's Envoy runs on an engine outside the booted root but in the router's network
# namespace: a lab-style holder (tools/lab/holder.sh: own /etc, /var/lib, /run, /tmp) with a stock
# dockerd, which the router role reaches as router_envoy_engine_host with network_mode host, so
# Envoy's sockets are the router's. Inside the root, a stand-in docker.service marks where Docker
# starts in the boot order (the router's interception unit is ordered before docker.service); the
# test starts the engine after it, as systemd would start dockerd, and Envoy's container comes back
# by its restart policy.
#
# Environment: TPROXY_CACHE_DIR (default ~/.cache/tproxy-envoy), TPROXY_DEBIAN_MIRROR (overrides the
# machine's apt sources), PYTHON (the project venv's python, kept visible in the engine's holder).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$(dirname "$HERE")")
SUITE=bookworm
# systemd as init; iproute2, iptables and procps for the roles' state and sysctls; python3 for
# Ansible's modules; curl for the test's requests.
PACKAGES=systemd,systemd-sysv,iproute2,iptables,procps,python3,curl
CACHE_DIR=${TPROXY_CACHE_DIR:-$HOME/.cache/tproxy-envoy}/reboot
BRIDGE=br0
TAR_OPTS=(--format=posix --numeric-owner --xattrs --xattrs-include=security.capability)

log() { echo "boot: [${SECONDS}s] $*" >&2; }
die() { log "error: $*"; exit 1; }
trap 'log "error: command failed at line $LINENO: $BASH_COMMAND"' ERR

# ---------------------------------------------------------------- the root file system

rootfs_tar() { echo "$CACHE_DIR/rootfs-$(echo "$SUITE $PACKAGES" | sha256sum | cut -c1-16).tar"; }

# The machine's Debian mirror, read from its apt sources as tools/lab/images.sh does.
debian_mirror() {
  # shellcheck source-path=SCRIPTDIR source=../lab/images.sh
  source <(sed -n '/^debian_mirror()/,/^# -\{10,\} building/p' "$REPO/tools/lab/images.sh")
  debian_mirror
}

unmount_below() { # DIR: mounts a killed debootstrap or nspawn left there, deepest first
  local dir mnt
  dir=$(realpath -m "$1")
  awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r mnt; do umount -l "$mnt"; done
}

remove_tree() { [ ! -e "$1" ] || { unmount_below "$1"; rm -rf --one-file-system "$1"; }; }

cmd_build() {
  local tar work mirror
  tar=$(rootfs_tar)
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.lock"
  flock 9
  if [ -s "$tar" ]; then log "rootfs: cached ($(basename "$tar"))"; return; fi
  mirror=$(debian_mirror)
  work=$(mktemp -d "$CACHE_DIR/.work.XXXXXX")
  log "rootfs: debootstrap $SUITE with $PACKAGES (about a minute)"
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/rootfs" "$mirror" \
      >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    remove_tree "$work"
    die "debootstrap failed (last lines of its log above)"
  fi
  unmount_below "$work/rootfs"
  rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/archives/*.deb
  tar "${TAR_OPTS[@]}" -C "$work/rootfs" -cf "$tar.part" .
  remove_tree "$work"
  mv "$tar.part" "$tar"
  local old
  for old in "$CACHE_DIR"/rootfs-*.tar; do [ "$old" = "$tar" ] || rm -f "$old"; done
  log "rootfs: built $(basename "$tar") ($(du -m "$tar" | cut -f1) MB)"
}

cmd_install() { # DIR NAME ADDRESS/LEN [standin]
  local dir=$1 name=$2 cidr=$3 standin=${4:-} root
  root="$dir/rootfs"
  cmd_build
  remove_tree "$root"
  mkdir -p "$root"
  tar "${TAR_OPTS[@]}" -C "$root" -xf "$(rootfs_tar)"
  echo "$name" >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$name" >"$root/etc/hosts"
  tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
  # The address comes from the host's own network configuration at boot, as on a real host, so
  # network-online.target means something: systemd-networkd-wait-online waits for it.
  cat >"$root/etc/systemd/network/10-eth0.network" <<EOF
[Match]
Name=eth0

[Network]
Address=$cidr
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
  systemctl --root="$root" --quiet enable systemd-networkd.service systemd-networkd-wait-online.service
  # Nothing in this root needs a getty on the console that nobody reads.
  systemctl --root="$root" --quiet mask console-getty.service
  if [ "$standin" = standin ]; then
    cat >"$root/etc/systemd/system/docker.service" <<'EOF'
# Stand-in (tools/reboot/boot.sh): this host's Docker engine runs outside this root, in the same
# network namespace; the reboot test starts it once this unit is active, where Debian's
# docker.service would start dockerd (its ordering is copied here).
[Unit]
Description=Docker engine (stand-in: started outside this root)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target
EOF
    systemctl --root="$root" --quiet enable docker.service
  fi
  log "$name: root file system installed at $root"
}

# ---------------------------------------------------------------- booting

netns_exists() { mountpoint -q "/run/netns/$1" 2>/dev/null; }

host_mac() { # ADDRESS: 02:00 + the IPv4 address in hex, fixed across boots like a real NIC's
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  printf '02:00:%02x:%02x:%02x:%02x' "$a" "$b" "$c" "$d"
}

# The host PID of the booted root's PID 1: the process in NETNS whose innermost PID is 1.
init_pid() { # NETNS
  local inode p
  inode=$(stat -L -c %i "/run/netns/$1") || return 0
  for p in /proc/[0-9]*; do
    [ "$(stat -L -c %i "$p/ns/net" 2>/dev/null)" = "$inode" ] || continue
    if grep -qE '^NSpid:.*[[:space:]]1$' "$p/status" 2>/dev/null; then echo "${p#/proc/}"; return 0; fi
  done
}

running() { # PID: exists and is not a zombie
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

wait_gone() { # SECONDS PID
  local deadline=$((SECONDS + $1))
  while running "$2"; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.2; done
}

cmd_boot() { # DIR NETNS LAN_NETNS ADDRESS
  local dir=$1 ns=$2 lan=$3 address=$4 peer nspawn pid deadline
  peer="veth-$(basename "$dir")"
  [ -d "$dir/rootfs/etc" ] || die "no root file system at $dir/rootfs (boot.sh install)"
  [ ! -s "$dir/nspawn.pid" ] || ! running "$(cat "$dir/nspawn.pid")" || die "$dir is already booted"
  netns_exists "$lan" || die "no LAN namespace $lan"
  # A new network namespace: the kernel state of the previous boot is gone with the old one.
  ! netns_exists "$ns" || ip netns delete "$ns"
  ip -n "$lan" link delete "$peer" 2>/dev/null || true
  ip netns add "$ns"
  # A new namespace copies the controller's IPv4 settings; a real host boots with forwarding off.
  nsenter --net="/run/netns/$ns" sh -c 'echo 0 >/proc/sys/net/ipv4/ip_forward'
  ip -n "$lan" link add "$peer" type veth peer name eth0 netns "$ns" address "$(host_mac "$address")"
  ip -n "$lan" link set "$peer" master "$BRIDGE" up
  # --keep-unit and --register=no: this machine runs no systemd to register with.
  # --capability=CAP_NET_ADMIN and /proc/sys/net writable: nspawn grants both only for a network
  # namespace of its own making; this one is the host's own as well.
  # setsid: a Ctrl-C of the test run must not reach the booted host's console.
  SYSTEMD_NSPAWN_API_VFS_WRITABLE=network setsid systemd-nspawn --quiet --boot --register=no --keep-unit \
    --machine="$(basename "$dir")" --capability=CAP_NET_ADMIN --network-namespace-path="/run/netns/$ns" \
    -D "$dir/rootfs" </dev/null >"$dir/console.log" 2>&1 &
  nspawn=$!
  echo "$nspawn" >"$dir/nspawn.pid"
  deadline=$((SECONDS + 30))
  pid=""
  until [ -n "$pid" ]; do
    running "$nspawn" || { tail -n 20 "$dir/console.log" >&2; die "systemd-nspawn exited (console above)"; }
    [ "$SECONDS" -lt "$deadline" ] || die "no PID 1 in $ns after 30 s"
    sleep 0.1
    pid=$(init_pid "$ns")
  done
  echo "$pid" >"$dir/init.pid"
  log "$(basename "$dir"): booted, PID 1 is $pid (systemd-nspawn $nspawn, network namespace $ns)"
}

cmd_poweroff() { # DIR NETNS
  local dir=$1 ns=$2 nspawn pid
  nspawn=$(cat "$dir/nspawn.pid" 2>/dev/null || true)
  pid=$(cat "$dir/init.pid" 2>/dev/null || true)
  if [ -n "$nspawn" ] && running "$nspawn"; then
    # systemctl poweroff through nsenter finds no bus here; SIGRTMIN+4 is systemd's own poweroff.
    [ -z "$pid" ] || kill -s SIGRTMIN+4 "$pid" 2>/dev/null || true
    if ! wait_gone 60 "$nspawn"; then
      log "$(basename "$dir"): no poweroff in 60 s; terminating systemd-nspawn $nspawn"
      kill -TERM "$nspawn" 2>/dev/null || true
      wait_gone 10 "$nspawn" || { kill -KILL "$nspawn" 2>/dev/null || true; wait_gone 5 "$nspawn" || true; }
    fi
    running "$nspawn" && die "systemd-nspawn $nspawn is still running"
    log "$(basename "$dir"): powered off"
  fi
  rm -f "$dir/nspawn.pid" "$dir/init.pid"
  # nspawn's per-machine directory on this machine (empty once it is gone).
  rmdir "/run/systemd/nspawn/propagate/$(basename "$dir")" 2>/dev/null || true
  unmount_below "$dir/rootfs"
  ! netns_exists "$ns" || ip netns delete "$ns"
}

# ---------------------------------------------------------------- the router's Docker engine

engine_sock() { echo "$1/run/docker.sock"; }

cmd_engine_start() { # DIR NETNS
  local dir=$1 ns=$2 holder dockerd deadline shared=()
  mkdir -p "$dir"
  if [ ! -d "$dir/etc" ]; then
    cp -a /etc "$dir/etc.part"
    basename "$dir" >"$dir/etc.part/hostname"
    mkdir -p "$dir/etc.part/docker"
    # No docker0 on 172.17.0.0/16: documentation addresses only.
    echo '{"bridge": "none"}' >"$dir/etc.part/docker/daemon.json"
    mv "$dir/etc.part" "$dir/etc"
  fi
  install -d -m 0755 "$dir/var-lib" "$dir/var-log" "$dir/usr-local-sbin"
  rm -rf --one-file-system "$dir/run" "$dir/tmp"
  install -d -m 0755 "$dir/run"
  install -d -m 1777 "$dir/tmp"
  if [ -n "${PYTHON:-}" ]; then shared+=("$("$PYTHON" -c 'import sys; print(sys.prefix)')"); fi
  setsid nsenter --net="/run/netns/$ns" unshare --mount --uts --propagation private \
    /bin/sh "$REPO/tools/lab/holder.sh" "$dir" "$(basename "$dir")" "${shared[@]}" \
    </dev/null >"$dir/holder.log" 2>&1 &
  holder=$!
  deadline=$((SECONDS + 10))
  until [ "$(cat "/proc/$holder/comm" 2>/dev/null)" = sleep ]; do
    if ! running "$holder" || [ "$SECONDS" -ge "$deadline" ]; then cat "$dir/holder.log" >&2; die "engine holder did not start"; fi
    sleep 0.05
  done
  echo "$holder" >"$dir/holder.pid"
  # Its containers' cgroups under /tproxy-reboot/NAME, removed by engine-stop.
  setsid nsenter --target "$holder" --mount --net --uts -- dockerd \
    --cgroup-parent="/tproxy-reboot/$(basename "$dir")" </dev/null >>"$dir/dockerd.log" 2>&1 &
  dockerd=$!
  echo "$dockerd" >"$dir/dockerd.pid"
  deadline=$((SECONDS + 60))
  until [ -S "$(engine_sock "$dir")" ] && timeout 10 /usr/bin/docker -H "unix://$(engine_sock "$dir")" version >/dev/null 2>&1; do
    if ! running "$dockerd" || [ "$SECONDS" -ge "$deadline" ]; then tail -n 20 "$dir/dockerd.log" >&2; die "dockerd did not answer"; fi
    sleep 0.2
  done
  log "$(basename "$dir"): dockerd $dockerd answers in $ns (holder $holder)"
}

cmd_engine_stop() { # DIR
  local dir=$1 pid c
  pid=$(cat "$dir/dockerd.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    # As a shutdown does: dockerd stops its containers; their restart policy applies at its next start.
    kill -TERM "$pid"
    wait_gone 60 "$pid" || { kill -KILL "$pid" 2>/dev/null || true; wait_gone 5 "$pid" || true; }
  fi
  pid=$(cat "$dir/holder.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ]; then
    local mnt others
    mnt=$(stat -L -c %i "/proc/$pid/ns/mnt")
    # Anything else left in the holder's mount namespace (containerd shims) goes with it.
    others=$(find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/mnt' -lname "mnt:\[$mnt\]" 2>/dev/null | cut -d/ -f3) || true
    # shellcheck disable=SC2086 # one PID per word
    kill -TERM $others 2>/dev/null || true
    for c in $others; do wait_gone 10 "$c" || kill -KILL "$c" 2>/dev/null || true; done
  fi
  rm -f "$dir/dockerd.pid" "$dir/holder.pid"
  unmount_below "$dir"
  for c in /sys/fs/cgroup/tproxy-reboot /sys/fs/cgroup/*/tproxy-reboot; do
    [ ! -d "$c" ] || find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

main() {
  [ "$(id -u)" = 0 ] || die "run as root"
  case ${1:-} in
    build) cmd_build ;;
    install) shift; [ $# -ge 3 ] || die "usage: $0 install DIR NAME ADDRESS/LEN [standin]"; cmd_install "$@" ;;
    boot) shift; [ $# -eq 4 ] || die "usage: $0 boot DIR NETNS LAN_NETNS ADDRESS"; cmd_boot "$@" ;;
    poweroff) shift; [ $# -eq 2 ] || die "usage: $0 poweroff DIR NETNS"; cmd_poweroff "$@" ;;
    engine-start) shift; [ $# -eq 2 ] || die "usage: $0 engine-start DIR NETNS"; cmd_engine_start "$@" ;;
    engine-stop) shift; [ $# -eq 1 ] || die "usage: $0 engine-stop DIR"; cmd_engine_stop "$@" ;;
    *) die "usage: $0 build | install | boot | poweroff | engine-start | engine-stop (see the header)" ;;
  esac
}

main "$@"
