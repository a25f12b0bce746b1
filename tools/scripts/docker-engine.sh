#!/usr/bin/env bash
# The controller's Docker engine, for molecule/docker (design §5).
#
#   tools/scripts/docker-engine.sh start    start Debian's dockerd unless an engine already answers
#   tools/scripts/docker-engine.sh stop     stop the engine `start` started, and only that one
#   tools/scripts/docker-engine.sh status   say whether an engine answers and whether we started it
#
# An engine that was already running is used as it is and never stopped: `start` records
# the PID (and its start time, against PID reuse) only of a dockerd it started itself.
# The engine it starts leaves the controller's network alone: --bridge=none (no docker0 on
# 172.17.0.0/16), --iptables=false and --ip-forward=false (no FORWARD policy of DROP, no
# forwarding turned on; the scenario's hosts share one bridge and need neither).
#
# Environment: DOCKER_ENGINE_SOCKET (default /run/docker.sock), DOCKER_ENGINE_STATE_DIR (pidfile
# and log, default /run/tproxy.envoy/docker-engine), DOCKERD (default dockerd on PATH),
# DOCKER_ENGINE_EXEC_ROOT (default /run/docker, dockerd's own default).
set -euo pipefail

SOCKET=${DOCKER_ENGINE_SOCKET:-/run/docker.sock}
STATE_DIR=${DOCKER_ENGINE_STATE_DIR:-/run/tproxy.envoy/docker-engine}
EXEC_ROOT=${DOCKER_ENGINE_EXEC_ROOT:-/run/docker}
DOCKERD=${DOCKERD:-dockerd}
PIDFILE=$STATE_DIR/dockerd.pid
LOG=$STATE_DIR/dockerd.log
START_TIMEOUT=60
STOP_TIMEOUT=60

log() { echo "docker-engine: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The engine's API answers a ping (no docker client needed, and no API version to agree on).
answers() {
  [ -S "$SOCKET" ] && curl -sf --max-time 5 --unix-socket "$SOCKET" http://localhost/_ping >/dev/null 2>&1
}

start_time() { # PID: field 22 of /proc/PID/stat (after the command name, which may hold spaces)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  awk '{ print $20 }' <<<"$stat"
}

# The PID in our pidfile if that process is still the dockerd we started, else nothing.
our_pid() {
  local pid started
  [ -s "$PIDFILE" ] || return 0
  read -r pid started <"$PIDFILE"
  [ -n "${pid:-}" ] && [ "$(start_time "$pid" || true)" = "$started" ] \
    && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && echo "$pid"
  return 0
}

cmd_start() {
  local pid
  if answers; then
    pid=$(our_pid)
    if [ -n "$pid" ]; then log "engine on $SOCKET already running (started by this script, PID $pid)"
    else log "an engine already answers on $SOCKET: using it, it is not ours to stop"; fi
    return
  fi
  pid=$(our_pid)
  [ -z "$pid" ] || die "dockerd $pid (ours) runs but does not answer on $SOCKET; see $LOG, or run stop"
  command -v "$DOCKERD" >/dev/null || die "no $DOCKERD: install Debian's docker.io (tools/scripts/bootstrap.sh)"
  mkdir -p "$STATE_DIR"
  rm -f "$PIDFILE"
  log "starting $DOCKERD on $SOCKET (log: $LOG)"
  setsid "$DOCKERD" --host "unix://$SOCKET" --exec-root "$EXEC_ROOT" \
    --bridge=none --iptables=false --ip-forward=false </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid $(start_time "$pid")" >"$PIDFILE"
  local waited=0
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      tail -n 20 "$LOG" >&2
      die "dockerd exited during start (last lines of its log above)"
    fi
    ((waited++ < START_TIMEOUT * 2)) || die "dockerd $pid does not answer on $SOCKET after ${START_TIMEOUT}s; see $LOG"
    sleep 0.5
  done
  log "engine up (PID $pid)"
}

# dockerd leaves an nsfs mount on <exec-root>/netns/default when it stops (design §5).
unmount_netns_default() {
  local mnt
  mnt=$(realpath -m "$EXEC_ROOT/netns/default")
  if awk -v m="$mnt" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    umount "$mnt"
    log "unmounted $mnt"
  fi
}

cmd_stop() {
  local pid waited=0
  pid=$(our_pid)
  if [ -z "$pid" ]; then
    [ ! -e "$PIDFILE" ] || { log "the dockerd in $PIDFILE is gone"; rm -f "$PIDFILE"; }
    answers && log "the engine on $SOCKET was not started by this script: left running"
    unmount_netns_default
    return
  fi
  log "stopping dockerd $pid"
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    ((waited++ < STOP_TIMEOUT * 2)) || die "dockerd $pid still runs ${STOP_TIMEOUT}s after SIGTERM; see $LOG"
    sleep 0.5
  done
  rm -f "$PIDFILE"
  unmount_netns_default
  log "engine stopped"
}

cmd_status() {
  local pid
  pid=$(our_pid)
  if answers; then
    if [ -n "$pid" ]; then echo "running on $SOCKET (started by this script, PID $pid)"
    else echo "running on $SOCKET (not started by this script)"; fi
  else
    echo "no engine answers on $SOCKET"
    return 3
  fi
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) die "usage: $0 start|stop|status" ;;
esac
