#!/usr/bin/env bash
# Runs `ansible-test sanity` and `ansible-test units` (tools/scripts/sanity.sh all) once
# for every ansible-core minor release that meta/runtime.yml's requires_ansible claims,
# so the claimed range is exactly the tested one.
#
# The newest claimed release runs every sanity test. An older release runs the unit tests and
# only the sanity tests whose verdict depends on the ansible-core release (OLDER_RELEASE_TESTS:
# how that release reads the documentation, imports the plugins against its module_utils,
# validates modules and meta/runtime.yml); the others (pylint, pep8, yamllint, shellcheck, the
# file-content tests, changelog) check the code's form with tools that each release merely
# pins, and would only repeat the newest release's verdict at several minutes per release.
# The newest release's unit tests are `make unit` (the project venv, the same tests), not repeated here.
# SANITY_MATRIX_FULL=1 runs every sanity test on every release.
#
# The project venv (.venv) serves the release it has; each other release gets a venv of
# its own, venv-core-<minor> in the machine's cache (TPROXY_CACHE_DIR, default
# ~/.cache/tproxy-envoy, as for the lab's images: a clean clone does not build them again), as
# a user of that release would have it: that ansible-core with the newest `ansible` package
# built for it (whose bundled amazon.aws and community.docker are the dependencies), plus what
# the unit tests import. Created on first use from the machine's package index (about 2 min and
# 600 MB each), under a lock (two checkouts may run this at once), reused afterwards; remove it
# to pick up newer packages.
#
# Usage: tools/scripts/sanity-matrix.sh [extra ansible-test options]
#   CORE_VERSIONS="2.17 2.18"  test only these minors (they must lie in the claimed range)
#   SANITY_MATRIX_FULL=1  every sanity test on every release, not only on the newest
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
project_python=$repo/.venv/bin/python
[ -x "$project_python" ] || { echo "sanity-matrix: no project venv (run tools/scripts/bootstrap.sh)" >&2; exit 1; }
# Sanity tests whose result can differ between ansible-core releases (see the top).
OLDER_RELEASE_TESTS="action-plugin-docs ansible-doc import runtime-metadata validate-modules"
# The controller Pythons of each release (its ansible-test refuses others), newest first. The
# project venv's own interpreter is tried first; BASE_PYTHON=path overrides the choice.
declare -A CONTROLLER_PYTHONS=([2.17]="3.12 3.11 3.10" [2.18]="3.13 3.12 3.11" [2.19]="3.13 3.12 3.11")
project_base=$("$project_python" -c 'import sys; print(sys._base_executable)')

# The minors of the claimed range: ">=2.A.0,<2.B.0" -> 2.A ... 2.(B-1). An open range
# cannot be tested, so it is an error.
mapfile -t claimed < <("$project_python" - <<'PY'
import sys, yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version
spec = SpecifierSet(yaml.safe_load(open('meta/runtime.yml'))['requires_ansible'])
if not any(s.operator in ('<', '<=') for s in spec):
    sys.exit('sanity-matrix: requires_ansible %s has no upper bound: it claims releases nobody tested' % spec)
print('\n'.join('2.%d' % minor for minor in range(0, 100) if Version('2.%d.0' % minor) in spec))
PY
)
((${#claimed[@]})) || { echo "sanity-matrix: requires_ansible names no release" >&2; exit 1; }
read -r -a versions <<<"${CORE_VERSIONS:-${claimed[*]}}"
for version in "${versions[@]}"; do
  printf '%s\n' "${claimed[@]}" | grep -qxF "$version" \
    || { echo "sanity-matrix: $version is outside requires_ansible (${claimed[*]})" >&2; exit 2; }
done

# The ansible-core minor of an interpreter, if it also has the dependency collections.
core_minor() {
  "$1" -c 'import ansible.release as r, ansible_collections.amazon.aws; print(".".join(r.__version__.split(".")[:2]))' 2>/dev/null
}

# base_python_for MINOR: an interpreter that release supports as its controller.
base_python_for() {
  local minor=$1 version candidate
  if [ -n "${BASE_PYTHON:-}" ]; then echo "$BASE_PYTHON"; return; fi
  for version in ${CONTROLLER_PYTHONS[$minor]:-}; do
    for candidate in "$project_base" "/usr/bin/python$version" "$(command -v "python$version" 2>/dev/null || true)"; do
      if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
      [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ] || continue
      "$candidate" -c 'import ensurepip, venv' 2>/dev/null || continue
      echo "$candidate"; return
    done
  done
  echo "sanity-matrix: no Python ${CONTROLLER_PYTHONS[$minor]:-?} (with its venv module) for ansible-core $minor's controller" >&2
  return 1
}

# venv_for MINOR: prints the bin directory of a venv with that ansible-core minor.
venv_for() {
  local minor=$1 venv next base_python
  if [ "$(core_minor "$project_python")" = "$minor" ]; then
    echo "$repo/.venv/bin"; return
  fi
  venv=${TPROXY_CACHE_DIR:-$HOME/.cache/tproxy-envoy}/venv-core-$minor
  mkdir -p "$(dirname "$venv")"
  # Held until this subshell ends (venv_for runs in $(...)): one creator at a time.
  exec {lock}>"$venv.lock"
  flock "$lock"
  if [ "$(core_minor "$venv/bin/python")" != "$minor" ]; then
    base_python=$(base_python_for "$minor") || return 1
    echo "sanity-matrix: creating $venv with $base_python" >&2
    rm -rf "$venv"
    "$base_python" -m venv "$venv" || return 1
    next="${minor%.*}.$((${minor#*.} + 1))"
    # `ansible` unpinned: pip picks the newest release whose ansible-core pin fits.
    # The unit tests' imports: pytest and xdist (ansible-test units runs -n), boto3, jsonschema.
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "ansible-core>=$minor.0,<$next.0" ansible \
      "pytest>=8,<10" "pytest-xdist>=3,<4" "boto3>=1.40,<2" "jsonschema>=4,<5" >&2 || return 1
  fi
  echo "$venv/bin"
}

newest=${claimed[-1]}
declare -A result seconds core scope
status=0
for minor in "${versions[@]}"; do
  echo "== ansible-core $minor"
  start=$SECONDS
  if ! bin=$(venv_for "$minor"); then
    result[$minor]="no venv"; seconds[$minor]=$((SECONDS - start)); status=1; continue
  fi
  core[$minor]=$("$bin/python" -c 'import ansible.release as r; print(r.__version__)')
  tests=
  what=all
  scope[$minor]="all sanity tests; units"
  if [ "${SANITY_MATRIX_FULL:-0}" != 1 ]; then
    if [ "$minor" != "$newest" ]; then
      tests=$OLDER_RELEASE_TESTS
      scope[$minor]="sanity: $OLDER_RELEASE_TESTS; units"
    elif [ "$bin" = "$repo/.venv/bin" ]; then
      # The project venv's release: `make unit` runs the same unit tests on it.
      what=sanity
      scope[$minor]="all sanity tests; units: make unit"
    fi
  fi
  if PATH="$bin:$PATH" SANITY_TESTS="$tests" tools/scripts/sanity.sh "$what" "$@"; then
    result[$minor]=passed
  else
    result[$minor]=FAILED; status=1
  fi
  seconds[$minor]=$((SECONDS - start))
done

echo "== sanity matrix (requires_ansible: $("$project_python" -c 'import yaml; print(yaml.safe_load(open("meta/runtime.yml"))["requires_ansible"])'))"
for minor in "${versions[@]}"; do
  printf '  ansible-core %-8s %-7s %4d s  (%s)\n' "${core[$minor]:-$minor}" "${result[$minor]}" \
    "${seconds[$minor]}" "${scope[$minor]:-not run}"
done
exit "$status"
