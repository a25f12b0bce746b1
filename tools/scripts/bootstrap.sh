#!/usr/bin/env bash
# Installs what the project needs on a new machine, in two parts:
#   packages  Debian/Ubuntu packages (only the missing ones): the lab, the benchmarks, the
#             tests that need root. Needs root (apt-get); without root it only reports what
#             is missing and fails if anything is.
#   venv      the controller virtualenv .venv from requirements.txt. No root: `make check`
#             needs only this (and git and shellcheck, which it checks for).
#   all       both (the default; `make bootstrap`).
# The venv is made with the newest supported Python 3 the machine has (ansible-core 2.19, the
# project's controller, runs on 3.11 to 3.13), preferring the distribution's own interpreter
# (/usr/bin) so that any account can use the venv. Where there is one without its venv module
# (Debian and Ubuntu ship that as python3.X-venv) or none at all (Ubuntu jammy's python3 is 3.10),
# the packages part installs the missing piece.
# Idempotent: a warm run does nothing but a few checks.
#
# Usage: tools/scripts/bootstrap.sh [packages|venv|all]
#   PYTHON=/path/to/python3.X  use this interpreter for the venv instead of choosing one
set -euo pipefail
cd "$(dirname "$0")/../.."

what=${1:-all}
case "$what" in
  packages|venv|all) ;;
  *) echo "usage: $0 [packages|venv|all]" >&2; exit 2 ;;
esac

APT_PACKAGES=(docker.io debootstrap iproute2 iptables nftables procps util-linux curl
              wrk haproxy nginx-light valgrind kmod libcap2-bin shellcheck
              systemd-container logrotate git prometheus)
# The router role's fleet (VRRP): lab hosts share this machine's /usr and start with a copy of its
# package database, so the role finds Debian's keepalived installed there, as on a host it installed.
APT_PACKAGES+=(keepalived)
# What `make check` (the venv part) runs besides the venv: command -> Debian package.
declare -A CHECK_COMMANDS=([git]=git [shellcheck]=shellcheck [promtool]=prometheus)
# The controller Pythons ansible-core 2.19 supports, newest first.
SUPPORTED_PYTHONS=(3.13 3.12 3.11)

die() { echo "bootstrap: $*" >&2; exit 1; }

# python_for VERSION: the interpreter of that version, the distribution's first, or nothing.
python_for() {
  local candidate
  for candidate in "/usr/bin/python$1" "$(command -v "python$1" 2>/dev/null || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import sys' 2>/dev/null && { echo "$candidate"; return; }
  done
}
has_venv() { "$1" -c 'import ensurepip, venv' 2>/dev/null; }

# choose_python: prints "PATH VERSION" of the newest supported Python that can make a venv;
# failing that, of the newest supported one without its venv module (and returns 1).
choose_python() {
  local version path fallback=""
  if [ -n "${PYTHON:-}" ]; then
    version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "PYTHON=$PYTHON does not run"
    printf '%s\n' "${SUPPORTED_PYTHONS[@]}" | grep -qxF "$version" \
      || die "PYTHON=$PYTHON is Python $version; supported: ${SUPPORTED_PYTHONS[*]}"
    echo "$PYTHON $version"; has_venv "$PYTHON"; return
  fi
  for version in "${SUPPORTED_PYTHONS[@]}"; do
    path=$(python_for "$version")
    [ -n "$path" ] || continue
    if has_venv "$path"; then echo "$path $version"; return 0; fi
    [ -n "$fallback" ] || fallback="$path $version"
  done
  [ -n "$fallback" ] && echo "$fallback"
  return 1
}

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

packages() {
  local missing=() pkg python_pkgs=() chosen version
  for pkg in "${APT_PACKAGES[@]}"; do is_installed "$pkg" || missing+=("$pkg"); done
  # A Python for the venv: its venv module, or a whole Python where none is supported.
  if chosen=$(choose_python); then
    :
  elif [ -n "$chosen" ]; then
    version=${chosen#* }
    python_pkgs=("python$version-venv")
  else
    # Ubuntu jammy (3.10) has python3.11 in its archive; Debian bookworm and later ship a supported python3.
    python_pkgs=(python3.11 python3.11-venv)
  fi
  for pkg in "${python_pkgs[@]}"; do is_installed "$pkg" || missing+=("$pkg"); done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" != 0 ]; then
    die "missing Debian packages: ${missing[*]} (run \`make packages\` as root once; \`make check\` needs only \`make venv\`)"
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep package scripts from starting services (nginx, haproxy, docker) on the controller.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1; fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
}

venv() {
  local chosen python version stamp want command missing=()
  if ! chosen=$(choose_python); then
    if [ -n "$chosen" ]; then
      die "Python ${chosen#* } (${chosen% *}) has no venv module: install python${chosen#* }-venv (\`make packages\` as root)"
    fi
    die "no Python ${SUPPORTED_PYTHONS[*]} found (ansible-core 2.19 needs one): \`make packages\` as root installs python3.11"
  fi
  python=${chosen% *}
  version=${chosen#* }
  # The venv is rebuilt when requirements.txt or the interpreter changes.
  stamp=.venv/.requirements.sha256
  want=$({ readlink -f "$python"; "$python" -c 'import sys; print(sys.version)'; cat requirements.txt; } | sha256sum | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: building .venv with $python (Python $version) from requirements.txt"
    rm -rf .venv
    "$python" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements.txt
    echo "$want" >"$stamp"
  fi
  for command in "${!CHECK_COMMANDS[@]}"; do
    command -v "$command" >/dev/null || missing+=("${CHECK_COMMANDS[$command]}")
  done
  if ((${#missing[@]})); then
    die "\`make check\` also needs: ${missing[*]} (Debian packages: \`make packages\` as root, or apt-get install them)"
  fi
}

case "$what" in
  packages) packages ;;
  venv) venv ;;
  all) packages; venv ;;
esac
