#!/usr/bin/env bash
# Runs `make TARGET` for each target in order, stops at the first failure, and prints how long
# each one took (also after a failure or an interrupt), so the suite's growth is visible.
# `make test` and `make check` call it with their lists (TEST_TARGETS / CHECK_TARGETS in the Makefile).
#
# Targets after `--beside` form a second lane that runs at the same time as the first, one target
# after another, for targets that share nothing with the first lane's (`make test`: the lab's tests
# wait on Envoy, timers and the network much of the time; the checks that need no lab fill that
# time). The second lane's output goes to a file and is printed as one block when both lanes have
# ended, so that each target's output stays in one piece.
#
# Usage: tools/scripts/run-targets.sh TARGET... [--beside TARGET...]
#   MAKE  the make to call (the Makefile passes its own, with its flags)
#   RUN_TARGETS_LABEL  the name shown in the summary (default: run-targets)
set -uo pipefail

make_cmd=${MAKE:-make}
label=${RUN_TARGETS_LABEL:-run-targets}
lane=() beside=()
for arg in "$@"; do
  if [ "$arg" = --beside ]; then
    [ "${#beside[@]}" -eq 0 ] || { echo "$0: --beside given twice" >&2; exit 2; }
    beside=(--beside)
  elif [ "${#beside[@]}" -gt 0 ]; then
    beside+=("$arg")
  else
    lane+=("$arg")
  fi
done
beside=("${beside[@]:1}")
if [ "$((${#lane[@]} + ${#beside[@]}))" -eq 0 ]; then
  echo "usage: $0 TARGET... [--beside TARGET...]" >&2
  exit 2
fi
declare -A seconds=() result=()
failed=""
started=$EPOCHREALTIME
# The second lane's results (one "target seconds result" line each) and output.
beside_dir=$(mktemp -d "${TMPDIR:-/tmp}/run-targets.XXXXXX")
beside_pid=""

print_beside() {
  echo
  echo "$label: the output of the targets beside (${beside[*]})"
  cat "$beside_dir/output" 2>/dev/null
}

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# run_lane RESULTS_FILE TARGET...: each target in turn until one fails; appends to RESULTS_FILE.
run_lane() {
  local results=$1 target start verdict
  shift
  for target in "$@"; do
    echo "$label: make $target"
    echo "$target" >"$results.current"
    start=$EPOCHREALTIME
    if "$make_cmd" "$target"; then verdict=ok; else verdict=FAIL; fi
    echo "$target $(elapsed "$start" "$EPOCHREALTIME") $verdict" >>"$results"
    [ "$verdict" = ok ] || return 1
  done
}

# shellcheck disable=SC2317  # called by the EXIT trap
summary() {
  local target total verdict seconds_taken outcome
  if [ -n "$beside_pid" ]; then
    # Interrupted: the lane beside and its make (its own process group) end too.
    kill -TERM -- "-$beside_pid" 2>/dev/null && wait "$beside_pid" 2>/dev/null
    print_beside
  fi
  for file in "$beside_dir/lane" "$beside_dir/beside"; do
    if [ -e "$file" ]; then
      while read -r target seconds_taken outcome; do
        seconds[$target]=$seconds_taken; result[$target]=$outcome
        [ "$outcome" = ok ] || failed=${failed:+$failed, }$target
      done <"$file"
    fi
    # A target that started and has no result was interrupted.
    if [ -e "$file.current" ] && [ -z "${result[$(cat "$file.current")]:-}" ]; then
      target=$(cat "$file.current"); result[$target]=interrupted; failed=${failed:+$failed, }$target
    fi
  done
  rm -rf "$beside_dir"
  total=$(elapsed "$started" "$EPOCHREALTIME")
  echo
  echo "$label: seconds per target${beside[*]:+ (targets marked | ran beside the others)}"
  printf '  %-24s %9s  %s\n' target seconds result
  for target in "${lane[@]}"; do
    printf '  %-24s %9s  %s\n' "$target" "${seconds[$target]:--}" "${result[$target]:-not run}"
  done
  for target in "${beside[@]}"; do
    printf '  | %-22s %9s  %s\n' "$target" "${seconds[$target]:--}" "${result[$target]:-not run}"
  done
  if [ -n "$failed" ]; then verdict="FAIL ($failed)"; else verdict=ok; fi
  printf '  %-24s %9s  %s\n' total "$total" "$verdict"
}
trap summary EXIT
trap 'exit 130' INT TERM

if [ "${#beside[@]}" -gt 0 ]; then
  # Job control gives the lane beside a process group of its own (to end it whole).
  set -m
  run_lane "$beside_dir/beside" "${beside[@]}" >"$beside_dir/output" 2>&1 &
  beside_pid=$!
  set +m
fi
status=0
run_lane "$beside_dir/lane" "${lane[@]}" || status=1
if [ -n "$beside_pid" ]; then
  wait "$beside_pid" || status=1
  beside_pid=""
  print_beside
fi
exit "$status"
