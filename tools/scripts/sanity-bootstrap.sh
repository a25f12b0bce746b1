#!/usr/bin/env bash
# Lets `ansible-test sanity` run on machines that reach only package registries.
#
# ansible-test bootstraps pip into each of its virtualenvs with a get-pip script
# that it downloads from the internet, unless a cached copy exists at
# ~/.ansible/test/cache/get_pip_<version>.py. This writes an offline stand-in
# there for every pip version the installed ansible-test asks for: it installs
# the pip that ships with Python (ensurepip), then runs `pip install` with the
# arguments ansible-test passed, through the machine's own pip configuration.
#
# Usage: tools/scripts/sanity-bootstrap.sh   (idempotent; ANSIBLE_TEST=path overrides
# the ansible-test found on PATH)
set -euo pipefail

MARKER='# tproxy.envoy offline pip bootstrap stand-in'

ansible_test=${ANSIBLE_TEST:-$(command -v ansible-test || true)}
if [ -z "$ansible_test" ]; then
  echo "sanity-bootstrap: ansible-test not found on PATH (run tools/scripts/bootstrap.sh, or set ANSIBLE_TEST)" >&2
  exit 1
fi
# The interpreter that runs ansible-test is the one whose ansible_test package we ask.
python=$(sed -n '1s/^#! *//p' "$ansible_test")
python=${python%% *}
[ -x "$python" ] || { echo "sanity-bootstrap: cannot read the interpreter of $ansible_test" >&2; exit 1; }

# Ask ansible-test itself which pip version(s) its virtualenvs bootstrap, for every
# Python it supports, so an ansible-core upgrade needs no change here.
mapfile -t pip_versions < <("$python" - <<'PY'
import types
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._util.target.common.constants import (
    CONTROLLER_PYTHON_VERSIONS, REMOTE_ONLY_PYTHON_VERSIONS)
versions = {get_venv_packages(types.SimpleNamespace(version=v))['pip']
            for v in CONTROLLER_PYTHON_VERSIONS + REMOTE_ONLY_PYTHON_VERSIONS}
print('\n'.join(sorted(versions)))
PY
)
((${#pip_versions[@]})) || { echo "sanity-bootstrap: ansible-test named no pip version" >&2; exit 1; }

cache_dir="$HOME/.ansible/test/cache"
mkdir -p "$cache_dir"

stand_in() {
  cat <<PY
$MARKER (tools/scripts/sanity-bootstrap.sh).
# ansible-test runs this instead of downloading get-pip.py for pip $1.
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap()
# ensurepip points PIP_CONFIG_FILE at /dev/null; drop it so that pip uses this
# machine's configuration (its package index and CA bundle).
os.environ.pop('PIP_CONFIG_FILE', None)
# get-pip.py options that pip install does not know.
args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
if args:
    sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args))
PY
}

for version in "${pip_versions[@]}"; do
  target="$cache_dir/get_pip_${version//./_}.py"
  # A failed download leaves an empty .download file behind; it only confuses readers.
  [ -s "$target.download" ] || rm -f "$target.download"
  if [ -s "$target" ] && ! grep -qF "$MARKER" "$target"; then
    echo "sanity-bootstrap: keeping $target (not ours: a real get-pip script or a hand-made one)"
    continue
  fi
  tmp=$(mktemp "$target.XXXXXX")
  chmod 644 "$tmp"
  stand_in "$version" >"$tmp"
  if cmp -s "$tmp" "$target"; then
    rm -f "$tmp"
    echo "sanity-bootstrap: $target is up to date (pip $version)"
  else
    mv "$tmp" "$target"
    echo "sanity-bootstrap: wrote $target (pip $version)"
  fi
done
