#!/usr/bin/env bash
# Installs what the project needs on a new machine: Debian packages (only the
# missing ones) and the controller virtualenv from requirements.txt.
# Idempotent: a warm run does nothing but a few checks.
set -euo pipefail
cd "$(dirname "$0")/../.."

APT_PACKAGES=(docker.io debootstrap iproute2 iptables nftables procps util-linux curl
              wrk haproxy nginx-light valgrind kmod libcap2-bin shellcheck
              systemd-container logrotate)
# The router role's fleet (VRRP): lab hosts share this machine's /usr and start with a copy of its
# package database, so the role finds Debian's keepalived installed there, as on a host it installed.
APT_PACKAGES+=(keepalived)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep package scripts from starting services (nginx, haproxy, docker) on the controller.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1; fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ "$created_policy" = 1 ] && rm -f "$policy"
fi

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: building .venv from requirements.txt"
  python3.11 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  echo "$want" >"$stamp"
fi
