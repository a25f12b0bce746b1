#!/usr/bin/env bash
# The local lab (design §2, §2b): hosts made of Linux namespaces on one bridged LAN, as the lab
# inventory (inventories/lab, read through tools/lab/inventory.py) describes them: names,
# addresses, prefix length, namespace names, which hosts get an engine, the lab directory.
#
#   tools/lab/lab.sh up            create or repair the lab (idempotent: a healthy lab is left alone)
#   tools/lab/lab.sh down          remove everything `up` made (no lab: nothing to do)
#   tools/lab/lab.sh status        one line per host; exit 0 when every host is up, 3 otherwise
#   tools/lab/lab.sh reboot HOST   simulate a reboot: /etc and /var/lib stay, /run, /tmp, network go
#
# A host HOST is:
#   - its network namespace (lab_netns, tproxy-HOST): lo, and eth0 (a veth whose peer sits on the
#     bridge br0 inside the namespace lab_lan_netns, tproxy-lan) with the host's address, and its
#     IPv6 address too when the inventory gives it one (tproxy_ipv6_address); no default route;
#   - a holder process (tools/lab/holder.sh) in that namespace with a mount and UTS namespace of its
#     own, where $LAB_DIR/HOST/{etc,var-lib,var-log,run,tmp,usr-local-sbin} are bound over /etc,
#     /var/lib, /var/log, /run, /tmp and /usr/local/sbin;
#     its PID is in the host's ansible_netns_pidfile ($LAB_DIR/HOST/holder.pid), which the
#     tproxy.envoy.netns connection enters;
#   - on hosts with lab_docker_engine (router and web), Debian's stock dockerd started inside the
#     holder's namespaces with its default paths and iptables management, reachable from the controller at
#     $LAB_DIR/HOST/run/docker.sock, with the lab images loaded (tools/lab/images.sh).
# Nothing here touches the controller's network namespace, /etc or Docker engine; `down` leaves
# /run/netns (which `ip netns add` creates or turns into a mount point) as `up` found it.
#
# Environment: PYTHON (venv python for tools/lab/inventory.py and tools/lab/images.sh; default: the
# repository's .venv if present, else python3 with PyYAML and Jinja2),
# DOCKER (client binary, default /usr/bin/docker: Debian's client matches Debian's dockerd),
# LAB_INVENTORY (the inventory directory to build the lab from, default inventories/lab).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$(dirname "$HERE")")
BRIDGE=br0
DOCKER=${DOCKER:-/usr/bin/docker}
IMAGES_SH="$HERE/images.sh"
if [ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; fi
[ -z "${PYTHON:-}" ] || export PYTHON
# LAB_DIR, LAN_NS, PREFIX_LEN, PREFIX6_LEN, HOSTS, ENGINE_HOSTS and, per host, ADDRESS, NETNS and
# PIDFILE, and ADDRESS6 for the hosts that have an IPv6 address, from the inventory (every value
# shell-quoted there). An IPv4-only inventory gives an empty ADDRESS6 and PREFIX6_LEN.
LAB_VARS=$("${PYTHON:-python3}" "$HERE/inventory.py" shell "${LAB_INVENTORY:-$REPO/inventories/lab}") ||
  { echo "lab: error: cannot read the lab inventory (above); run \`make bootstrap\` for the venv" >&2; exit 1; }
eval "$LAB_VARS"
# What `up` found at /run/netns (absent, dir or mount), for `down` to restore.
RUN_NETNS_FOUND="$LAB_DIR/run-netns.found"
# The hosts share the controller's /usr and run modules with the venv's Python: keep the venv
# visible inside them even if it lies under /tmp (a clone in /tmp) or another per-host path.
SHARED_PATHS=()
if [ -n "${PYTHON:-}" ]; then SHARED_PATHS+=("$("$PYTHON" -c 'import sys; print(sys.prefix)')"); fi

CHANGED=0

log() { echo "lab: [${SECONDS}s] $*" >&2; }
die() { log "error: $*"; exit 1; }
changed() { CHANGED=1; log "$*"; }
trap 'log "error: command failed at line $LINENO: $BASH_COMMAND"' ERR

# ---------------------------------------------------------------- processes and namespaces

host_dir() { echo "$LAB_DIR/$1"; }
netns_of() { echo "${NETNS[$1]}"; }
is_engine_host() { [[ " ${ENGINE_HOSTS[*]} " == *" $1 "* ]]; }

ns_inode() { stat -L -c %i "/proc/$1/ns/$2" 2>/dev/null; } # PID KIND
CONTROLLER_MNT=$(ns_inode $$ mnt)
CONTROLLER_NET=$(ns_inode $$ net)

read_pid() { # FILE -> PID or nothing
  local pid
  [ -r "$1" ] || return 0
  pid=$(tr -d '[:space:]' <"$1")
  [[ $pid =~ ^[1-9][0-9]*$ ]] && echo "$pid"
  return 0
}

# PID COMM: a live process of ours, never one of the controller's (PIDs get reused): the
# command name matches and it lives in a mount namespace that is not the controller's.
is_lab_process() {
  [ -n "$1" ] && [ -e "/proc/$1" ] || return 1
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
  local mnt
  mnt=$(ns_inode "$1" mnt) || return 1
  [ "$mnt" != "$CONTROLLER_MNT" ]
}

pids_in_ns() { # KIND INODE: every process in that namespace
  local found
  [ -n "$2" ] || return 0
  # find complains about processes that exit while it looks: not an error here.
  found=$(find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/'"$1" -lname "$1:\[$2\]" 2>/dev/null) || true
  [ -z "$found" ] || cut -d/ -f3 <<<"$found"
}

# PID: exists and is not a zombie (an exited process waits for its reaper; it holds nothing).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

wait_gone() { # SECONDS PID...: true when all are gone in time
  local deadline=$((SECONDS + $1)) pid alive
  shift
  while :; do
    alive=0
    for pid in "$@"; do running "$pid" && alive=1; done
    [ "$alive" = 0 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

terminate() { # PID...: TERM, then KILL what is left after 10 s
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  wait_gone 10 "$@" || { kill -KILL "$@" 2>/dev/null || true; wait_gone 5 "$@" || true; }
}

netns_exists() { mountpoint -q "/run/netns/$1" 2>/dev/null; }
netns_inode() { stat -L -c %i "/run/netns/$1" 2>/dev/null; }

# ---------------------------------------------------------------- the controller's /run/netns

# `ip netns add` creates /run/netns if it is missing and makes it a mount point (bound onto
# itself) if it is not one; another user of `ip netns` may have done either before the lab.
run_netns_now() { # absent, dir or mount
  if mountpoint -q /run/netns 2>/dev/null; then echo mount
  elif [ -d /run/netns ]; then echo dir
  else echo absent; fi
}

# Before the lab's first `ip netns add`; kept until `down` (a repairing `up` finds the lab's own).
run_netns_record() {
  [ -s "$RUN_NETNS_FOUND" ] || run_netns_now >"$RUN_NETNS_FOUND"
}

# FOUND: undo what the lab's `ip netns add` did, nothing more. Not when someone else's namespace
# is in there now, and not without a record (no lab, or one made before records existed).
run_netns_restore() {
  [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ] || return 0
  case $1 in
    absent | dir)
      if mountpoint -q /run/netns; then
        umount /run/netns
        changed "/run/netns unmounted (it was not a mount point before up)"
      fi
      if [ "$1" = absent ] && ! mountpoint -q /run/netns; then
        rmdir /run/netns
        changed "/run/netns removed (it did not exist before up)"
      fi
      ;;
  esac
}

# ---------------------------------------------------------------- the bridge

lan_ensure() {
  ensure_netns "$LAN_NS"
  ip -n "$LAN_NS" link set lo up
  if ! ip -n "$LAN_NS" link show "$BRIDGE" >/dev/null 2>&1; then
    ip -n "$LAN_NS" link add "$BRIDGE" type bridge
    changed "$LAN_NS: bridge $BRIDGE created"
  fi
  ip -n "$LAN_NS" link set "$BRIDGE" up
}

ensure_netns() { # NAME: a live named netns (a leftover plain file from a crash is replaced)
  netns_exists "$1" && return 0
  [ ! -e "/run/netns/$1" ] || ip netns delete "$1" 2>/dev/null || rm -f "/run/netns/$1"
  ip netns add "$1"
  changed "network namespace $1 created"
}

# ---------------------------------------------------------------- a host's network

# A new network namespace copies the controller's IPv4 settings (net.core.devconf_inherit_init_net=0),
# so a controller with forwarding on would hand every host forwarding on. A real host boots with
# it off, and what a stock dockerd does then (turn it on, set FORWARD to DROP) must happen here too.
boot_sysctls() { # NETNS
  nsenter --net="/run/netns/$1" sh -c 'echo 0 >/proc/sys/net/ipv4/ip_forward'
}

# A fixed MAC per host, as a real NIC keeps across reboots (otherwise the other hosts' ARP
# caches point at the old veth for a while after `reboot`): 02:00 + the IPv4 address in hex.
host_mac() { # HOST
  local a b c d
  IFS=. read -r a b c d <<<"${ADDRESS[$1]}"
  printf '02:00:%02x:%02x:%02x:%02x' "$a" "$b" "$c" "$d"
}

host_net_ensure() { # HOST
  local ns peer
  ns=$(netns_of "$1")
  peer="veth-$1"
  if ! netns_exists "$ns"; then
    ensure_netns "$ns"
    boot_sysctls "$ns"
  fi
  ip -n "$ns" link set lo up
  if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    # A peer left on the bridge belongs to a namespace that is gone or going.
    ip -n "$LAN_NS" link delete "$peer" 2>/dev/null || true
    ip -n "$LAN_NS" link add "$peer" type veth peer name eth0 netns "$ns" address "$(host_mac "$1")"
    changed "$1: eth0 linked to $LAN_NS/$BRIDGE"
  fi
  ip -n "$LAN_NS" link set "$peer" master "$BRIDGE" up
  if ! ip -n "$ns" -4 -o addr show dev eth0 | grep -qw "inet ${ADDRESS[$1]}/$PREFIX_LEN"; then
    ip -n "$ns" addr add "${ADDRESS[$1]}/$PREFIX_LEN" dev eth0
    changed "$1: eth0 ${ADDRESS[$1]}/$PREFIX_LEN"
  fi
  ip -n "$ns" link set eth0 up
  host_ipv6_ensure "$1"
}

# HOST: the inventory's IPv6 address is on eth0, usable. The kernel drops a link's IPv6 addresses
# when the link goes down or IPv6 is turned off on it, so this runs after `link set eth0 up`.
host_ipv6_ok() {
  ip -n "$(netns_of "$1")" -6 -o addr show dev eth0 2>/dev/null |
    awk -v want="${ADDRESS6[$1]}/$PREFIX6_LEN" '$3 == "inet6" && $4 == want && !/ (tentative|dadfailed) / { ok = 1 }
      END { exit !ok }'
}

# HOST (a host without tproxy_ipv6_address: nothing to do, the host stays IPv4 only).
host_ipv6_ensure() {
  local ns key
  [ -n "${ADDRESS6[$1]:-}" ] || return 0
  ns=$(netns_of "$1")
  # A new netns starts from the kernel's IPv6 defaults, not the controller's settings; those say
  # "off" on a kernel booted with ipv6.disable_ipv6=1, and anyone may have turned it off since.
  nsenter --net="/run/netns/$ns" test -d /proc/sys/net/ipv6 ||
    die "$1: this kernel has no IPv6 (booted with ipv6.disable=1?); the lab inventory gives $1 an IPv6 address"
  for key in all eth0; do
    if [ "$(nsenter --net="/run/netns/$ns" cat "/proc/sys/net/ipv6/conf/$key/disable_ipv6")" != 0 ]; then
      nsenter --net="/run/netns/$ns" sh -c "echo 0 >/proc/sys/net/ipv6/conf/$key/disable_ipv6"
      changed "$1: IPv6 enabled (net.ipv6.conf.$key.disable_ipv6=0)"
    fi
  done
  host_ipv6_ok "$1" && return 0
  # An address stuck in duplicate address detection is not usable: replaced, not kept.
  ip -n "$ns" -6 addr del "${ADDRESS6[$1]}/$PREFIX6_LEN" dev eth0 2>/dev/null || true
  # nodad: usable at once, no DAD delay; the inventory hands each address out once (inventory.py checks).
  ip -n "$ns" -6 addr add "${ADDRESS6[$1]}/$PREFIX6_LEN" dev eth0 nodad
  changed "$1: eth0 ${ADDRESS6[$1]}/$PREFIX6_LEN"
}

# ---------------------------------------------------------------- a host's disk

# /etc starts as a copy of the controller's (the hosts share its /usr), named and given the lab's
# names; it is the host's "disk": kept by reboot, removed by down.
seed_etc() { # HOST
  local dir part
  dir=$(host_dir "$1")
  [ -d "$dir/etc" ] && return 0
  part="$dir/etc.part"
  rm -rf "$part"
  cp -a /etc "$part"
  echo "$1" >"$part/hostname"
  tr -d '-' </proc/sys/kernel/random/uuid >"$part/machine-id"
  {
    echo "127.0.0.1 localhost"
    echo "::1 localhost ip6-localhost ip6-loopback"
    local host
    # IPv4 only, also in a dual-stack lab: a name must keep resolving to the address the roles
    # (IPv4 only for now) expect, not to an IPv6 one that a resolver would try first.
    for host in "${HOSTS[@]}"; do echo "${ADDRESS[$host]} $host"; done
  } >"$part/hosts"
  if is_engine_host "$1"; then
    # No docker0 on 172.17.0.0/16: the lab uses documentation addresses only.
    mkdir -p "$part/docker"
    echo '{"bridge": "none"}' >"$part/docker/daemon.json"
  fi
  mv "$part" "$dir/etc"
  changed "$1: /etc seeded from the controller's"
}

# /var/lib starts with the package database only: the hosts share the controller's /usr, so
# what dpkg says is installed is true there too.
seed_var_lib() { # HOST
  local dir
  dir=$(host_dir "$1")
  # Like /var/lib, the host's /usr/local/sbin and /var/log are its disk: kept across `reboot`
  # (a role's log files are the host's, never the controller's).
  install -d -m 0755 "$dir/usr-local-sbin" "$dir/var-log"
  [ -d "$dir/var-lib" ] && return 0
  rm -rf "$dir/var-lib.part"
  mkdir -p "$dir/var-lib.part"
  [ ! -d /var/lib/dpkg ] || cp -a /var/lib/dpkg "$dir/var-lib.part/dpkg"
  mv "$dir/var-lib.part" "$dir/var-lib"
  changed "$1: /var/lib created"
}

fresh_volatile_dirs() { # HOST: /run and /tmp do not survive a boot
  local dir
  dir=$(host_dir "$1")
  rm -rf --one-file-system "$dir/run" "$dir/tmp"
  install -d -m 0755 "$dir/run"
  install -d -m 1777 "$dir/tmp"
}

# ---------------------------------------------------------------- the holder

holder_pid() { # HOST: PID of the live holder, or nothing
  local pid
  pid=$(read_pid "${PIDFILE[$1]}")
  if [ -n "$pid" ] && is_lab_process "$pid" sleep; then echo "$pid"; fi
  return 0
}

holder_healthy() { # HOST: the holder lives in the host's current network namespace
  local pid ns
  ns=$(netns_of "$1")
  pid=$(holder_pid "$1")
  [ -n "$pid" ] && netns_exists "$ns" && [ "$(ns_inode "$pid" net)" = "$(netns_inode "$ns")" ]
}

# Run as `detached COMMAND... &`: COMMAND in a new session (a Ctrl-C in the terminal that ran
# `make lab` must not reach the lab's hosts), holding no descriptor above 2 of this script's: a lock
# its caller holds (`flock /tmp/tproxy-lab.lock make lab`) would otherwise stay held by the lab's
# daemons for as long as the lab is up. `&` makes the subshell that execs setsid, which execs
# COMMAND (not a group leader: no fork), so $! is COMMAND's PID.
detached() {
  local path fd
  for path in "/proc/$BASHPID/fd/"*; do
    fd=${path##*/}
    if [ "$fd" -gt 2 ] && [ "$fd" != 255 ]; then eval "exec $fd>&-"; fi
  done
  exec setsid "$@"
}

holder_start() { # HOST
  local dir ns pid deadline
  dir=$(host_dir "$1")
  ns=$(netns_of "$1")
  fresh_volatile_dirs "$1"
  detached nsenter --net="/run/netns/$ns" \
    unshare --mount --uts --propagation private /bin/sh "$HERE/holder.sh" "$dir" "$1" "${SHARED_PATHS[@]}" \
    </dev/null >"$dir/holder.log" 2>&1 &
  pid=$!
  # The PID stays the same through nsenter, unshare and sh until `exec sleep`: sleeping = ready.
  deadline=$((SECONDS + 10))
  until [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ]; do
    if [ ! -e "/proc/$pid" ] || [ "$SECONDS" -ge "$deadline" ]; then
      cat "$dir/holder.log" >&2 || true
      die "$1: the holder did not start (log above)"
    fi
    sleep 0.05
  done
  echo "$pid" >"${PIDFILE[$1]}"
  # Remembered so that `down` finds this host's processes even if the netns file is gone.
  echo "net=$(ns_inode "$pid" net) mnt=$(ns_inode "$pid" mnt)" >"$dir/holder.ns"
  changed "$1: holder $pid (hostname $1; own /etc, /var/lib, /run, /tmp)"
}

# HOST: end every process of the host: the holder, and anything left in its namespaces
# (containerd, shims, containers with host networking).
host_processes_stop() {
  local dir ns net="" mnt="" pid pids=()
  dir=$(host_dir "$1")
  ns=$(netns_of "$1")
  if [ -r "$dir/holder.ns" ]; then
    net=$(sed -n 's/.*net=\([0-9]*\).*/\1/p' "$dir/holder.ns")
    mnt=$(sed -n 's/.*mnt=\([0-9]*\).*/\1/p' "$dir/holder.ns")
  fi
  pid=$(holder_pid "$1")
  [ -z "$pid" ] || mnt=$(ns_inode "$pid" mnt)
  mapfile -t pids < <({
    # The controller's own namespaces are never a host's (a stale inode could point there).
    [ "$net" = "$CONTROLLER_NET" ] || pids_in_ns net "$net"
    netns_exists "$ns" && pids_in_ns net "$(netns_inode "$ns")"
    [ "$mnt" = "$CONTROLLER_MNT" ] || pids_in_ns mnt "$mnt"
  } | sort -un)
  if [ ${#pids[@]} -gt 0 ]; then
    terminate "${pids[@]}"
    changed "$1: stopped processes ${pids[*]}"
  fi
  rm -f "${PIDFILE[$1]}" "$dir/holder.ns"
}

# ---------------------------------------------------------------- the Docker engine

# Named after the lab's directory (/var/lib/tproxy-lab: /tproxy-lab/HOST): two labs up at once, whose
# hosts have the same names, keep their containers' cgroups apart.
CGROUP_TOP=$(basename "$LAB_DIR")
cgroup_parent() { echo "/$CGROUP_TOP/$1"; } # HOST

remove_lab_cgroups() { # the (empty, once every container is gone) cgroups of this lab's engines
  local dir
  for dir in "/sys/fs/cgroup/$CGROUP_TOP" /sys/fs/cgroup/*/"$CGROUP_TOP"; do
    [ -d "$dir" ] || continue
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || log "warning: cannot remove $dir (still in use?)"
  done
}

engine_socket() { echo "$(host_dir "$1")/run/docker.sock"; }

engine_answers() { # HOST
  [ -S "$(engine_socket "$1")" ] &&
    timeout 10 "$DOCKER" -H "unix://$(engine_socket "$1")" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

engine_pid() { # HOST: PID of the host's live dockerd, or nothing
  local pid
  pid=$(read_pid "$(host_dir "$1")/dockerd.pid")
  if [ -n "$pid" ] && is_lab_process "$pid" dockerd; then echo "$pid"; fi
  return 0
}

engine_healthy() { # HOST: dockerd runs in the current holder's namespaces and answers
  local pid holder
  pid=$(engine_pid "$1")
  holder=$(holder_pid "$1")
  [ -n "$pid" ] && [ -n "$holder" ] &&
    [ "$(ns_inode "$pid" mnt)" = "$(ns_inode "$holder" mnt)" ] &&
    [ "$(ns_inode "$pid" net)" = "$(ns_inode "$holder" net)" ] &&
    engine_answers "$1"
}

# HOST MODE: MODE=clean stops the containers through the engine first (down); MODE=shutdown
# only signals dockerd, as a host's shutdown does, so restart policies apply at the next boot.
engine_stop() {
  local pid ids
  pid=$(engine_pid "$1")
  if [ -n "$pid" ]; then
    if [ "$2" = clean ] && engine_answers "$1"; then
      ids=$("$DOCKER" -H "unix://$(engine_socket "$1")" ps -q)
      # shellcheck disable=SC2086 # one argument per container id
      [ -z "$ids" ] || "$DOCKER" -H "unix://$(engine_socket "$1")" stop -t 10 $ids >/dev/null
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone 60 "$pid"; then
      log "$1: dockerd $pid did not stop in 60 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone 5 "$pid" || true
    fi
    changed "$1: dockerd $pid stopped"
  fi
  rm -f "$(host_dir "$1")/dockerd.pid"
}

engine_start() { # HOST
  local dir holder pid deadline
  dir=$(host_dir "$1")
  holder=$(holder_pid "$1")
  [ -n "$holder" ] || die "$1: no holder to start dockerd in"
  # Debian's dockerd with its default paths, inside the host: /var/lib/docker, /run/docker.sock,
  # /etc/docker/daemon.json and the iptables rules are all the lab host's own.
  # --cgroup-parent: the containers' cgroups go under /CGROUP_TOP/HOST, so `down` can remove
  # exactly those and never the "docker" cgroups of an engine on the controller.
  detached nsenter --target "$holder" --mount --net --uts -- dockerd --cgroup-parent="$(cgroup_parent "$1")" \
    </dev/null >>"$dir/dockerd.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/dockerd.pid"
  deadline=$((SECONDS + 60))
  until engine_answers "$1"; do
    if [ ! -e "/proc/$pid" ] || [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$dir/dockerd.log" >&2 || true
      die "$1: dockerd did not answer on $(engine_socket "$1") (end of $dir/dockerd.log above)"
    fi
    sleep 0.2
  done
  changed "$1: dockerd $pid answers on $(engine_socket "$1")"
}

engine_ensure() { # HOST
  engine_healthy "$1" && return 0
  engine_stop "$1" shutdown
  engine_start "$1"
}

images_available() {
  [ -f "$IMAGES_SH" ] && return 0
  log "warning: $IMAGES_SH is missing; the engines get no lab images"
  return 1
}

# ---------------------------------------------------------------- a whole host

host_ensure() { # HOST
  local dir
  dir=$(host_dir "$1")
  mkdir -p "$dir"
  seed_etc "$1"
  seed_var_lib "$1"
  if ! holder_healthy "$1"; then
    # Whatever still runs belongs to a namespace that is gone or half-made: a cold boot.
    is_engine_host "$1" && engine_stop "$1" shutdown
    host_processes_stop "$1"
    # A netns without a holder may have lost its address or link: rebuild it too.
    ip netns delete "$(netns_of "$1")" 2>/dev/null || true
  fi
  host_net_ensure "$1"
  holder_healthy "$1" || holder_start "$1"
  if is_engine_host "$1"; then engine_ensure "$1"; fi
}

host_remove() { # HOST
  local ns
  ns=$(netns_of "$1")
  is_engine_host "$1" && engine_stop "$1" clean
  host_processes_stop "$1"
  if netns_exists "$ns" || [ -e "/run/netns/$ns" ]; then
    ip netns delete "$ns"
    changed "network namespace $ns deleted"
  fi
}

# ---------------------------------------------------------------- commands

require_root() { [ "$(id -u)" = 0 ] || die "run as root (namespaces, mounts and dockerd need it)"; }

require_tools() {
  local tool missing=()
  for tool in ip nsenter unshare setsid mountpoint dockerd "$DOCKER"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (Debian: iproute2, util-linux, docker.io)"
}

# One lab.sh at a time; the lock is this file itself, so nothing is left behind. Daemons are
# started with fd 8 closed, or they would hold the lock forever.
take_lock() { exec 8<"${BASH_SOURCE[0]}"; flock 8; }

cmd_up() {
  require_root
  require_tools
  take_lock
  local host
  # Build (or find cached) images before any engine needs them.
  if [ ${#ENGINE_HOSTS[@]} -gt 0 ] && images_available; then bash "$IMAGES_SH" build; fi
  mkdir -p "$LAB_DIR"
  chmod 0755 "$LAB_DIR"
  run_netns_record
  lan_ensure
  for host in "${HOSTS[@]}"; do host_ensure "$host"; done
  if [ ${#ENGINE_HOSTS[@]} -gt 0 ] && images_available; then
    for host in "${ENGINE_HOSTS[@]}"; do bash "$IMAGES_SH" load "$(engine_socket "$host")"; done
  fi
  if [ "$CHANGED" = 0 ]; then log "up: already up, nothing changed"; else log "up: done"; fi
  cmd_status
}

# Mounts on the controller under DIR (none are made there by design; this clears leftovers of
# a crash or of an older lab), deepest first.
unmount_below() {
  local mnt
  awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r mnt; do umount -l "$mnt" && log "unmounted leftover $mnt"; done
}

cmd_down() {
  require_root
  take_lock
  local host run_netns_found=""
  [ ! -r "$RUN_NETNS_FOUND" ] || run_netns_found=$(cat "$RUN_NETNS_FOUND")
  for host in "${HOSTS[@]}"; do host_remove "$host"; done
  if netns_exists "$LAN_NS" || [ -e "/run/netns/$LAN_NS" ]; then
    ip netns delete "$LAN_NS"
    changed "network namespace $LAN_NS deleted (bridge and veths with it)"
  fi
  remove_lab_cgroups
  if [ -d "$LAB_DIR" ]; then
    unmount_below "$LAB_DIR"
    rm -rf --one-file-system "$LAB_DIR"
    changed "$LAB_DIR removed"
  fi
  run_netns_restore "$run_netns_found"
  if [ "$CHANGED" = 0 ]; then log "down: no lab, nothing to do"; else log "down: done"; fi
}

host_state() { # HOST: one line
  local ns addr addr6="" holder engine
  ns=$(netns_of "$1")
  if netns_exists "$ns"; then
    addr=$(ip -n "$ns" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}')
    addr=${addr:-"no address"}
    # A dual-stack lab adds a column (an IPv4-only host shows "-"); an IPv4-only lab prints as before.
    if [ ${#ADDRESS6[@]} -gt 0 ]; then
      addr6=$(ip -n "$ns" -6 -o addr show dev eth0 scope global 2>/dev/null | awk '{ printf "%s%s", s, $4; s = "," }')
      [ -n "${ADDRESS6[$1]:-}" ] || addr6=${addr6:-"-"}
      addr6=${addr6:-"no IPv6 address"}
    fi
  else
    addr="no netns"
    [ ${#ADDRESS6[@]} -eq 0 ] || addr6="-"
  fi
  if holder_healthy "$1"; then holder="holder $(holder_pid "$1")"; else holder="holder down"; fi
  if ! is_engine_host "$1"; then
    engine="no engine"
  elif engine_healthy "$1"; then
    engine="dockerd $(engine_pid "$1") ($("$DOCKER" -H "unix://$(engine_socket "$1")" ps -q | wc -l) running)"
  else
    engine="dockerd down"
  fi
  if [ ${#ADDRESS6[@]} -gt 0 ]; then
    printf '%-7s %-16s %-18s %-20s %-18s %s\n' "$1" "$ns" "$addr" "$addr6" "$holder" "$engine"
  else
    printf '%-7s %-16s %-18s %-18s %s\n' "$1" "$ns" "$addr" "$holder" "$engine"
  fi
}

host_up() { # HOST: everything `up` promises for it
  holder_healthy "$1" || return 1
  ip -n "$(netns_of "$1")" -4 -o addr show dev eth0 2>/dev/null | grep -qw "inet ${ADDRESS[$1]}/$PREFIX_LEN" || return 1
  [ -z "${ADDRESS6[$1]:-}" ] || host_ipv6_ok "$1" || return 1
  ip -n "$LAN_NS" link show "veth-$1" 2>/dev/null | grep -q "master $BRIDGE" || return 1
  ! is_engine_host "$1" || engine_healthy "$1"
}

cmd_status() {
  local host all_up=0
  for host in "${HOSTS[@]}"; do
    host_state "$host"
    host_up "$host" || all_up=3
  done
  return "$all_up"
}

cmd_reboot() { # HOST
  require_root
  require_tools
  if [ -z "${1:-}" ] || [ -z "${ADDRESS[$1]:-}" ]; then die "usage: $0 reboot HOST (one of: ${HOSTS[*]})"; fi
  if ! netns_exists "$LAN_NS" || [ ! -d "$(host_dir "$1")/etc" ]; then
    die "no lab to reboot $1 in: run \`make lab\`"
  fi
  take_lock
  log "$1: rebooting (disk kept; /run, /tmp, network state and processes lost)"
  is_engine_host "$1" && engine_stop "$1" shutdown
  host_processes_stop "$1"
  ip netns delete "$(netns_of "$1")" 2>/dev/null || true
  host_ensure "$1"
  host_state "$1"
}

main() {
  case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status || exit "$?" ;;
    reboot) shift; cmd_reboot "$@" ;;
    *) die "usage: $0 up | down | status | reboot HOST" ;;
  esac
}

main "$@"
