#!/usr/bin/env bash
# The tools the production stack's tests run (tests/infra): docker-compose, which validates
# infra/compose.yaml (`docker-compose config`), and HAProxy, which runs the Docker socket
# proxy's configuration (infra/socket-proxy/haproxy.cfg) against this machine's engine.
# Installed from Debian's packages when missing; the HAProxy service itself stays stopped.
set -euo pipefail
missing=()
command -v docker-compose > /dev/null || missing+=(docker-compose)
command -v haproxy > /dev/null || missing+=(haproxy)
if ((${#missing[@]})); then
  echo "ensure_infra_tools: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq > /dev/null || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
  # the package starts its own haproxy on port 80: not ours
  (systemctl stop haproxy || service haproxy stop || pkill -x haproxy) > /dev/null 2>&1 || true
fi
