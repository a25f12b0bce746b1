#!/usr/bin/env bash
# Runs `make TARGET` for each target in order, stops at the first failure, and prints how long
# each one took (also after a failure or an interrupt), so the suite's growth is visible.
# `make test` and `make check` call it with their lists (the *_TARGETS variables in the Makefile).
#
# Each `--beside` starts another lane: its targets run one after another, at the same time as the
# other lanes' (`make test`: the lab's tests wait on Envoy, timers and the network much of the time;
# a second lab's tests and the checks that need no lab fill that time). A lane that starts with
# `--after TARGET` waits until TARGET (of another lane) has passed, and does not run if it failed or
# never ran. The other lanes' output goes to files, printed lane by lane as one block when every
# lane has ended, so that each target's output stays in one piece.
#
# Usage: tools/scripts/run-targets.sh TARGET... [--beside [--after TARGET] TARGET...]...
#   MAKE  the make to call (the Makefile passes its own, with its flags)
#   RUN_TARGETS_LABEL  the name shown in the summary (default: run-targets)
set -uo pipefail

make_cmd=${MAKE:-make}
label=${RUN_TARGETS_LABEL:-run-targets}
usage() { echo "usage: $0 TARGET... [--beside [--after TARGET] TARGET...]..." >&2; exit 2; }

# lanes[i]: lane i's targets, space-separated; after[i]: the target lane i waits for, if any.
lanes=("") after=("")
expect_after=""
for arg in "$@"; do
  last=$((${#lanes[@]} - 1))
  if [ "$arg" = --beside ]; then
    [ -n "${lanes[$last]}" ] || usage
    lanes+=("") after+=("")
  elif [ "$arg" = --after ]; then
    if [ "$last" -eq 0 ] || [ -n "${lanes[$last]}${after[$last]}" ]; then usage; fi
    expect_after=1
  elif [ -n "$expect_after" ]; then
    after[last]=$arg expect_after=""
  else
    lanes[last]="${lanes[$last]:+${lanes[$last]} }$arg"
  fi
done
if [ -n "$expect_after" ] || [ -z "${lanes[0]}" ] || [ -z "${lanes[${#lanes[@]} - 1]}" ]; then usage; fi

declare -A seconds=() result=() owner=()
for i in "${!lanes[@]}"; do
  for target in ${lanes[$i]}; do owner[$target]=$i; done
done
for i in "${!after[@]}"; do
  [ -z "${after[$i]}" ] || [ -n "${owner[${after[$i]}]:-}" ] || { echo "$0: --after ${after[$i]}: no lane runs it" >&2; exit 2; }
done
failed=""
started=$EPOCHREALTIME
# Per lane i: lane-i (one "target seconds result" line per target run), lane-i.current (the target
# running), lane-i.ended, lane-i.output (lanes after the first).
state_dir=$(mktemp -d "${TMPDIR:-/tmp}/run-targets.XXXXXX")
lane_pids=()

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# verdict_of TARGET: its result so far ("" while it has none).
verdict_of() { cat "$state_dir"/lane-* 2>/dev/null | awk -v t="$1" '$1 == t { print $3 }'; }

# wait_for TARGET: 0 once it passed; 1 once it failed, or its lane ended without running it.
wait_for() {
  local verdict
  while :; do
    verdict=$(verdict_of "$1")
    [ -z "$verdict" ] || { [ "$verdict" = ok ]; return; }
    [ ! -e "$state_dir/lane-${owner[$1]}.ended" ] || return 1
    sleep 1
  done
}

# run_lane I: lane I's targets in turn until one fails.
run_lane() {
  local results="$state_dir/lane-$1" target start verdict
  if [ -n "${after[$1]}" ]; then
    echo "$label: waiting for ${after[$1]} to pass"
    wait_for "${after[$1]}" || { echo "$label: ${after[$1]} did not pass: this lane does not run"; return 1; }
  fi
  for target in ${lanes[$1]}; do
    echo "$label: make $target"
    echo "$target" >"$results.current"
    start=$EPOCHREALTIME
    if "$make_cmd" "$target"; then verdict=ok; else verdict=FAIL; fi
    echo "$target $(elapsed "$start" "$EPOCHREALTIME") $verdict" >>"$results"
    [ "$verdict" = ok ] || return 1
  done
}

print_other_lanes() {
  local i
  for ((i = 1; i < ${#lanes[@]}; i++)); do
    echo
    echo "$label: the output of the targets beside (${lanes[$i]})"
    cat "$state_dir/lane-$i.output" 2>/dev/null
  done
}

# shellcheck disable=SC2317  # called by the EXIT trap
summary() {
  local i target total verdict seconds_taken outcome mark
  if [ ${#lane_pids[@]} -gt 0 ]; then
    # Interrupted: the other lanes and their makes (each its own process group) end too.
    for i in "${lane_pids[@]}"; do kill -TERM -- "-$i" 2>/dev/null; done
    wait "${lane_pids[@]}" 2>/dev/null
    print_other_lanes
  fi
  for i in "${!lanes[@]}"; do
    if [ -e "$state_dir/lane-$i" ]; then
      while read -r target seconds_taken outcome; do
        seconds[$target]=$seconds_taken; result[$target]=$outcome
        [ "$outcome" = ok ] || failed=${failed:+$failed, }$target
      done <"$state_dir/lane-$i"
    fi
    # A target that started and has no result was interrupted.
    if [ -e "$state_dir/lane-$i.current" ] && [ -z "${result[$(cat "$state_dir/lane-$i.current")]:-}" ]; then
      target=$(cat "$state_dir/lane-$i.current"); result[$target]=interrupted; failed=${failed:+$failed, }$target
    fi
  done
  rm -rf "$state_dir"
  total=$(elapsed "$started" "$EPOCHREALTIME")
  echo
  echo "$label: seconds per target$([ ${#lanes[@]} -gt 1 ] && echo " (targets marked | ran beside the others)")"
  printf '  %-24s %9s  %s\n' target seconds result
  for i in "${!lanes[@]}"; do
    mark=""
    [ "$i" -eq 0 ] || mark="| "
    for target in ${lanes[$i]}; do
      printf '  %s%-*s %9s  %s\n' "$mark" $((24 - ${#mark})) "$target" "${seconds[$target]:--}" \
        "${result[$target]:-not run}"
    done
  done
  if [ -n "$failed" ]; then verdict="FAIL ($failed)"; else verdict=ok; fi
  printf '  %-24s %9s  %s\n' total "$total" "$verdict"
}
trap summary EXIT
trap 'exit 130' INT TERM

# Job control gives each lane beside a process group of its own (to end it whole).
set -m
for ((i = 1; i < ${#lanes[@]}; i++)); do
  { run_lane "$i"; status=$?; touch "$state_dir/lane-$i.ended"; exit "$status"; } >"$state_dir/lane-$i.output" 2>&1 &
  lane_pids+=($!)
done
set +m
status=0
run_lane 0 || status=1
touch "$state_dir/lane-0.ended"
for pid in "${lane_pids[@]}"; do wait "$pid" || status=1; done
lane_pids=()
[ ${#lanes[@]} -eq 1 ] || print_other_lanes
exit "$status"
