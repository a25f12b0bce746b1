#!/usr/bin/env bash
# Runs `make TARGET` for each target in order, stops at the first failure, and prints how long
# each one took (also after a failure or an interrupt), so the suite's growth is visible.
# `make test` and `make check` call it with their lists (TEST_TARGETS / CHECK_TARGETS in the Makefile).
#
# Usage: tools/scripts/run-targets.sh TARGET...
#   MAKE  the make to call (the Makefile passes its own, with its flags)
#   RUN_TARGETS_LABEL  the name shown in the summary (default: run-targets)
set -uo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 TARGET..." >&2
  exit 2
fi
make_cmd=${MAKE:-make}
label=${RUN_TARGETS_LABEL:-run-targets}
targets=("$@")
declare -A seconds=() result=()
failed=""
started=$EPOCHREALTIME

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# shellcheck disable=SC2317  # called by the EXIT trap
summary() {
  local target total verdict
  total=$(elapsed "$started" "$EPOCHREALTIME")
  echo
  echo "$label: seconds per target"
  printf '  %-24s %9s  %s\n' target seconds result
  for target in "${targets[@]}"; do
    printf '  %-24s %9s  %s\n' "$target" "${seconds[$target]:--}" "${result[$target]:-not run}"
  done
  if [ -n "$failed" ]; then verdict="FAIL ($failed)"; else verdict=ok; fi
  printf '  %-24s %9s  %s\n' total "$total" "$verdict"
}
trap summary EXIT
# shellcheck disable=SC2317  # called by the INT/TERM trap
interrupted() {
  seconds[$current]=$(elapsed "$start" "$EPOCHREALTIME")
  result[$current]=interrupted
  failed=$current
  exit 130
}
trap interrupted INT TERM

for target in "${targets[@]}"; do
  echo "$label: make $target"
  current=$target
  start=$EPOCHREALTIME
  if "$make_cmd" "$target"; then
    result[$target]=ok
  else
    result[$target]=FAIL
  fi
  seconds[$target]=$(elapsed "$start" "$EPOCHREALTIME")
  if [ "${result[$target]}" = FAIL ]; then
    failed=$target
    exit 1
  fi
done
