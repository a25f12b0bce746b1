#!/usr/bin/env bash
# Runs `ansible-test sanity` and `ansible-test units` (tools/scripts/sanity.sh all) once
# for every ansible-core minor release that meta/runtime.yml's requires_ansible claims,
# so the claimed range is exactly the tested one.
#
# The project venv (.venv) serves the release it has; each other release gets a venv of
# its own, .cache/venv-core-<minor>, as a user of that release would have it: that
# ansible-core with the newest `ansible` package built for it (whose bundled amazon.aws,
# community.docker and ansible.posix are the dependencies), plus what the unit tests
# import. Created on first use from the machine's package index (about 2 min and 600 MB
# each), reused afterwards.
#
# Usage: tools/scripts/sanity-matrix.sh [extra ansible-test options]
#   CORE_VERSIONS="2.17 2.18"  test only these minors (they must lie in the claimed range)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
project_python=$repo/.venv/bin/python
[ -x "$project_python" ] || { echo "sanity-matrix: no project venv (run tools/scripts/bootstrap.sh)" >&2; exit 1; }
# The controller Python the venvs are made with; a release that does not support it
# cannot be tested here and so must not be claimed.
base_python=${BASE_PYTHON:-python3.11}

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

# venv_for MINOR: prints the bin directory of a venv with that ansible-core minor.
venv_for() {
  local minor=$1 venv next
  if [ "$(core_minor "$project_python")" = "$minor" ]; then
    echo "$repo/.venv/bin"; return
  fi
  venv=$repo/.cache/venv-core-$minor
  if [ "$(core_minor "$venv/bin/python")" != "$minor" ]; then
    echo "sanity-matrix: creating $venv" >&2
    rm -rf "$venv"
    "$base_python" -m venv "$venv"
    next="${minor%.*}.$((${minor#*.} + 1))"
    # `ansible` unpinned: pip picks the newest release whose ansible-core pin fits.
    # The unit tests' imports: pytest and xdist (ansible-test units runs -n), boto3, jsonschema.
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "ansible-core>=$minor.0,<$next.0" ansible \
      "pytest>=8,<10" "pytest-xdist>=3,<4" "boto3>=1.40,<2" "jsonschema>=4,<5" >&2
  fi
  echo "$venv/bin"
}

declare -A result seconds core
status=0
for minor in "${versions[@]}"; do
  echo "== ansible-core $minor"
  start=$SECONDS
  if ! bin=$(venv_for "$minor"); then
    result[$minor]="no venv"; seconds[$minor]=$((SECONDS - start)); status=1; continue
  fi
  core[$minor]=$("$bin/python" -c 'import ansible.release as r; print(r.__version__)')
  if PATH="$bin:$PATH" tools/scripts/sanity.sh all "$@"; then
    result[$minor]=passed
  else
    result[$minor]=FAILED; status=1
  fi
  seconds[$minor]=$((SECONDS - start))
done

echo "== sanity matrix (requires_ansible: $("$project_python" -c 'import yaml; print(yaml.safe_load(open("meta/runtime.yml"))["requires_ansible"])'))"
for minor in "${versions[@]}"; do
  printf '  ansible-core %-8s sanity+units %-7s %4d s\n' "${core[$minor]:-$minor}" "${result[$minor]}" "${seconds[$minor]}"
done
exit "$status"
