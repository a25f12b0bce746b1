#!/usr/bin/env bash
# Checks the execution environment definitions without building an image:
#   1. `ansible-builder create` turns execution-environment.yml into a build context;
#      the generated Containerfile and _build/ files carry the base image, the
#      collection, and the Python and system dependencies;
#   2. the collection's own meta/execution-environment.yml ships in the tarball and
#      ansible-builder's introspection of the installed copy finds its dependencies
#      (what happens when another EE lists tproxy.envoy among its collections).
# `ansible-builder build` is NOT run: it pulls the base image from a container
# registry and the collections from Galaxy, and neither is reachable here.
# KEEP_TREE=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

work=$(mktemp -d "${TMPDIR:-/tmp}/tproxy-ee.XXXXXX")
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { if [ "${KEEP_TREE:-0}" = 1 ]; then echo "ee-check: kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
exists() { if [ -f "$1" ]; then ok "$2"; else fail "$2 (no ${1#"$work"/})"; fi; }
# has FILE WHAT REGEX: the generated FILE must match REGEX.
has() { if grep -qE "$3" "$1"; then ok "$2"; else fail "$2 (no /$3/ in ${1#"$work"/})"; fi; }

read -r namespace name version base_image < <(python3 -c '
import yaml
galaxy = yaml.safe_load(open("galaxy.yml"))
ee = yaml.safe_load(open("execution-environment.yml"))
print(galaxy["namespace"], galaxy["name"], galaxy["version"], ee["images"]["base_image"]["name"])')

# --- 1. ansible-builder create ---------------------------------------------
echo "== ansible-builder create"
context="$work/context"
ansible-builder create -f execution-environment.yml -c "$context" --output-filename Containerfile >/dev/null
build="$context/_build"
exists "$context/Containerfile" "Containerfile generated"
has "$context/Containerfile" "base image is $base_image" "^ARG EE_BASE_IMAGE=\"$base_image\"$"
has "$context/Containerfile" "ansible-core 2.19 is installed" '^ARG ANSIBLE_INSTALL_REFS=".*ansible-core>=2\.19'
has "$context/Containerfile" "collections come from _build/requirements.yml" 'collection install .*-r requirements\.yml'
has "$context/Containerfile" "collection dependencies are introspected" 'introspect\.py introspect'
has "$build/requirements.yml" "the EE installs $namespace.$name" "name: $namespace\.$name$"
for package in boto3 botocore requests; do
  has "$build/requirements.txt" "Python dependency $package" "^$package([<>=!~ ]|$)"
done
for package in iproute2 iptables docker.io; do
  has "$build/bindep.txt" "system dependency $package (bindep)" "^$package \[platform:dpkg"
done
for script in assemble install-from-bindep introspect.py; do
  exists "$build/scripts/$script" "builder script $script"
done

# --- 2. the collection's EE metadata, from the installed tarball -------------
echo "== meta/execution-environment.yml in the built collection"
# Keep the checkout's ansible.cfg and .cache/collections link out of the way.
printf '[defaults]\ncollections_path = %s\n' "$work/collections" >"$work/ansible.cfg"
export ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$work/collections"
ansible-galaxy collection build --force --output-path "$work/dist" "$repo" >/dev/null
tarball="$work/dist/$namespace-$name-$version.tar.gz"
(cd "$work" && ansible-galaxy collection install --offline --no-deps -p "$work/collections" "$tarball" >/dev/null)
installed="$work/collections/ansible_collections/$namespace/$name"
for file in meta/execution-environment.yml meta/ee-requirements.txt meta/ee-bindep.txt; do
  exists "$installed/$file" "collection ships $file"
done
ansible-builder introspect "$work/collections" --write-pip "$work/pip.txt" --write-bindep "$work/bindep.txt" >/dev/null
for package in boto3 botocore requests; do
  has "$work/pip.txt" "introspection finds $package from $namespace.$name" "^$package.*# from collection $namespace\.$name$"
done
for package in iproute2 iptables docker.io util-linux; do
  has "$work/bindep.txt" "introspection finds $package from $namespace.$name" "^$package .*# from collection $namespace\.$name$"
done

echo "NOT BUILT: 'ansible-builder build' needs the base image ($base_image) from a container registry"
echo "           and $namespace.$name's collections from Galaxy; neither is reachable from this machine."
echo "ee-check: $failures failure(s) in ${SECONDS}s"
[ "$failures" = 0 ]
