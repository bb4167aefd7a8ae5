#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install docker.io when dockerd is missing,
# start dockerd in the background when it is not running, and wait until `docker info` works.
# Idempotent: a second call with a running engine only checks it. Exits non-zero (and says why)
# when no engine can be had, so the Docker tests fail instead of being skipped.
set -euo pipefail

LOG=${ALPHAFORGE_DOCKERD_LOG:-/var/log/alphaforge-dockerd.log}
WAIT_S=${ALPHAFORGE_DOCKERD_WAIT_S:-60}

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure_docker: dockerd is not installed and this is not root; install docker.io" >&2
    exit 1
  fi
  echo "ensure_docker: installing docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

# Another caller may be starting it right now: only start one dockerd (flock on a lock file).
exec 9>/var/lock/alphaforge-dockerd.lock
flock -w "$WAIT_S" 9
if ! docker info >/dev/null 2>&1; then
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "ensure_docker: starting dockerd (log: $LOG)" >&2
    nohup dockerd >"$LOG" 2>&1 &
  fi
  for _ in $(seq 1 "$((WAIT_S * 4))"); do
    docker info >/dev/null 2>&1 && break
    sleep 0.25
  done
fi
flock -u 9

if ! docker info >/dev/null 2>&1; then
  echo "ensure_docker: the Docker engine did not come up; see $LOG" >&2
  tail -n 20 "$LOG" >&2 || true
  exit 1
fi
