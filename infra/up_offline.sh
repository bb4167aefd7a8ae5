#!/usr/bin/env bash
# Bring the production stack (infra/compose.yaml) up on THIS machine, which reaches no container
# registry: the platform image built offline (build_platform_image.sh), the upstream postgres,
# minio and haproxy images swapped for stand-ins made from host binaries
# (build_offline_images.sh, compose.offline.yaml), Docker-pool workers.
#
#   infra/up_offline.sh up [WORKERS]  build what is missing, write the env file, `up -d`, wait
#                                     until every service is healthy and WORKERS (default 2)
#                                     workers run; prints the env file's path
#   infra/up_offline.sh down          `down -v`: containers, network, volumes (and the flow-run
#                                     containers the workers started on the stack's network)
#   infra/up_offline.sh compose ARGS  docker-compose with the stack's project, files and env
#
# Its own project name, network, volumes, sandbox root and host ports (OFFLINE_PROJECT, default
# afoffline; OFFLINE_API_PORT / OFFLINE_PREFECT_PORT / OFFLINE_MLFLOW_PORT, default 18400 /
# 18420 / 18450), so it runs beside anything else on the engine. The env file
# ($ALPHAFORGE_DATA_DIR/<project>.env) is made once from .env.example with random secrets.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${ALPHAFORGE_DATA_DIR:-$ROOT/.alphaforge}
PROJECT=${OFFLINE_PROJECT:-afoffline}
ENV_FILE=$STATE/$PROJECT.env
SANDBOX_ROOT=/var/lib/alphaforge-sandbox-$PROJECT
PLATFORM_UID=10002
mkdir -p "$STATE"

compose() {
  docker-compose -p "$PROJECT" -f "$ROOT/infra/compose.yaml" -f "$ROOT/infra/compose.offline.yaml" \
    --env-file "$ENV_FILE" "$@"
}

write_env() {
  local platform offline secret
  platform=$(ALPHAFORGE_PLATFORM_TAG=${ALPHAFORGE_PLATFORM_TAG:-$PROJECT} \
    bash "$ROOT/infra/build_platform_image.sh")
  offline=$(bash "$ROOT/infra/build_offline_images.sh")
  secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
  local keep=()
  if [ -f "$ENV_FILE" ]; then  # the secrets stay (a kept volume's database has the password)
    mapfile -t keep < <(grep -E '^(POSTGRES_PASSWORD|S3_SECRET_KEY|ALPHAFORGE_SECRET_KEY)=' "$ENV_FILE")
  fi
  {
    grep -v -E '^(#|$|POSTGRES_PASSWORD|S3_SECRET_KEY|ALPHAFORGE_SECRET_KEY|WORKER|API_PORT|PREFECT_PORT|MLFLOW_PORT|PREFECT_UI_API_URL|ALPHAFORGE_SANDBOX_ROOT)' \
      "$ROOT/infra/.env.example"
    if ((${#keep[@]})); then
      printf '%s\n' "${keep[@]}"
    else
      echo "POSTGRES_PASSWORD=$(secret)"
      echo "S3_SECRET_KEY=$(secret)"
      echo "ALPHAFORGE_SECRET_KEY=$(secret)"
    fi
    echo "WORKERS=${WORKERS:-2}"
    echo "WORKER_POOL_TYPE=docker"
    echo "WORKER_POOL=$PROJECT-docker"
    echo "API_PORT=${OFFLINE_API_PORT:-18400}"
    echo "PREFECT_PORT=${OFFLINE_PREFECT_PORT:-18420}"
    echo "MLFLOW_PORT=${OFFLINE_MLFLOW_PORT:-18450}"
    echo "PREFECT_UI_API_URL=http://localhost:${OFFLINE_PREFECT_PORT:-18420}/api"
    echo "ALPHAFORGE_SANDBOX_ROOT=$SANDBOX_ROOT"
    echo "ALPHAFORGE_NETWORK=$PROJECT"
    echo "ALPHAFORGE_STATE_VOLUME=$PROJECT-platform-state"
    echo "ALPHAFORGE_IMAGE=$platform"
    sed 's/^/OFFLINE_/' <<<"$offline"
  } >"$ENV_FILE.tmp"
  chmod 600 "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# wait_healthy SECONDS: every service container running and, with a health check, healthy;
# the one-off deploy exited 0
wait_healthy() {
  local deadline=$((SECONDS + $1)) ids id state bad
  while :; do
    bad=
    ids=$(compose ps -q)
    for id in $ids; do
      state=$(docker inspect --format \
        '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")
      case $state in
        "deploy exited 0 "*) ;;
        *" running "*" healthy" | "engine running "*) ;;
        *) bad+="$state; " ;;
      esac
    done
    if [ -z "$bad" ] && [ -n "$ids" ]; then
      return 0
    fi
    if ((SECONDS > deadline)); then
      echo "up_offline: not healthy after $1 s: $bad" >&2
      compose ps >&2 || true
      return 1
    fi
    sleep 3
  done
}

case ${1:-} in
  up)
    WORKERS=${2:-${WORKERS:-2}}
    bash "$ROOT/scripts/ensure_infra_tools.sh"
    write_env
    if [ ! -d "$SANDBOX_ROOT" ] || [ "$(stat -c %u "$SANDBOX_ROOT")" != "$PLATFORM_UID" ]; then
      install -d -o "$PLATFORM_UID" -g "$PLATFORM_UID" "$SANDBOX_ROOT"
    fi
    compose up -d --no-build --scale "worker=$WORKERS" >&2
    wait_healthy "${OFFLINE_WAIT_S:-300}"
    echo "$ENV_FILE"
    ;;
  down)
    if [ -f "$ENV_FILE" ]; then
      # flow-run containers the Docker workers started (outside compose) on the stack's network
      net=$(grep -E '^ALPHAFORGE_NETWORK=' "$ENV_FILE" | cut -d= -f2)
      if [ -n "$net" ]; then
        docker ps -aq --filter "network=$net" | xargs -r docker rm -f >/dev/null 2>&1 || true
      fi
      compose down -v --remove-orphans --timeout 20 >&2
    fi
    ;;
  compose)
    shift
    compose "$@"
    ;;
  *)
    echo "usage: up_offline.sh up [WORKERS] | down | compose ARGS..." >&2
    exit 2
    ;;
esac
