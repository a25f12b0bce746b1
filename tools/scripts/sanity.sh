#!/usr/bin/env bash
# Runs `ansible-test sanity` and `ansible-test units` on this checkout.
#
# ansible-test only works on a collection that sits at
# .../ansible_collections/<namespace>/<name>, so the checkout's files (tracked and
# new ones, minus everything .gitignore'd: .venv, .cache, .ansible, tests/output,
# ...) are copied into a temporary tree of that shape and tested there.
#
# Usage: tools/scripts/sanity.sh [sanity|units|all] [extra ansible-test options]
#   KEEP_TREE=1  keeps the temporary tree (its tests/output has the reports)
#   PYTHON_VERSION  the --python passed to ansible-test (default: the version of the
#                   interpreter that runs ansible-test)
#   SANITY_TESTS="a b"  run only these sanity tests (--test each); units are unaffected
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

what=${1:-all}
case "$what" in
  sanity|units|all) shift || true ;;
  *) echo "usage: $0 [sanity|units|all] [ansible-test options]" >&2; exit 2 ;;
esac
# ansible-test must run from the same interpreter that has ansible and the
# bundled collections; take it from the ansible-test on PATH.
ansible_test=$(command -v ansible-test) || { echo "sanity: ansible-test not on PATH (run tools/scripts/bootstrap.sh)" >&2; exit 1; }
python=$(sed -n '1s/^#! *//p' "$ansible_test"); python=${python%% *}
python_version=${PYTHON_VERSION:-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}
read -r -a sanity_tests <<<"${SANITY_TESTS:-}"
sanity_selection=()
for test in "${sanity_tests[@]}"; do sanity_selection+=(--test "$test"); done
# Without shellcheck ansible-test skips that test with only a warning.
command -v shellcheck >/dev/null || { echo "sanity: shellcheck is missing (apt-get install shellcheck)" >&2; exit 1; }

read -r namespace name < <("$python" - galaxy.yml <<'PY'
import sys, yaml
meta = yaml.safe_load(open(sys.argv[1]))
print(meta['namespace'], meta['name'])
PY
)

work=$(mktemp -d "${TMPDIR:-/tmp}/tproxy-sanity.XXXXXX")
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { if [ "${KEEP_TREE:-0}" = 1 ]; then echo "sanity: tree kept at $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
tree="$work/ansible_collections/$namespace/$name"
mkdir -p "$tree"

# What git would commit: tracked + untracked-but-not-ignored files that exist.
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar -C "$repo" --null -T - -cf - | tar -C "$tree" -xf -

# ansible-test finds a collection's dependencies beside it, in the same
# ansible_collections directory: link the installed copies of galaxy.yml's
# dependencies there (the ones bundled with the `ansible` package).
"$python" - galaxy.yml "$work/ansible_collections" <<'PY'
import importlib, os, sys, yaml
deps = yaml.safe_load(open(sys.argv[1])).get('dependencies') or {}
for fqcn in deps:
    namespace, name = fqcn.split('.')
    try:
        module = importlib.import_module(f'ansible_collections.{namespace}.{name}')
    except ImportError:
        sys.exit(f'sanity: dependency {fqcn} is not installed for {sys.executable}')
    link = os.path.join(sys.argv[2], namespace, name)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(list(module.__path__)[0], link)
PY

ANSIBLE_TEST="$ansible_test" tools/scripts/sanity-bootstrap.sh

# The Makefile points ANSIBLE_CONFIG at the checkout, whose collections_path
# leads to the checkout itself: ansible-test must see only the copy.
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS

status=0
cd "$tree"
if [ "$what" = sanity ] || [ "$what" = all ]; then
  echo "sanity: ansible-test sanity${SANITY_TESTS:+ (only: $SANITY_TESTS)} in $tree"
  start=$SECONDS
  ansible-test sanity --local --python "$python_version" --color no "${sanity_selection[@]}" "$@" || status=1
  echo "sanity: ansible-test sanity took $((SECONDS - start)) s"
fi
if [ "$what" = units ] || [ "$what" = all ]; then
  # ansible-test units always runs pytest with -n (xdist); with --local it uses
  # this interpreter's packages and installs nothing.
  if ! "$python" -c 'import xdist' 2>/dev/null; then
    echo "sanity: ansible-test units needs pytest-xdist for $python (requirements.txt)" >&2
    exit 1
  fi
  echo "sanity: ansible-test units in $tree"
  start=$SECONDS
  ansible-test units --local --python "$python_version" --color no "$@" || status=1
  echo "sanity: ansible-test units took $((SECONDS - start)) s"
fi
exit "$status"
