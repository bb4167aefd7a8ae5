#!/usr/bin/env bash
# The whole test suite, as CI runs it (`make test` → here). Installs and starts what the tests
# need when it is missing: Docker engine + offline sandbox images, Chromium, docker-compose and
# HAProxy (the production stack's checks), the UI's npm
# packages and build. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1

step() { printf '\n== %s\n' "$*"; }

step "services: Docker engine, sandbox images, Chromium, PostgreSQL"
bash scripts/ensure_docker.sh
PATH="$PWD/$VENV/bin:$PATH" bash infra/build_sandbox_images.sh
bash scripts/ensure_browser.sh
bash scripts/ensure_infra_tools.sh
pg_isready -h 127.0.0.1 -p 5432 -q || {
  echo "PostgreSQL does not answer on 127.0.0.1:5432 (the API tests need it)" >&2
  exit 1
}

step "web UI: committed contracts in step with Python, npm packages, build, unit tests"
# Before the build regenerates them: a stale committed copy fails here, not silently in CI.
PYTHONPATH="$PWD" "$VENV/bin/python" scripts/export_ui_contracts.py --check
bash scripts/build_ui.sh
(cd ui && npm test --silent)

step "lint and types"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"

step "pytest (PostgreSQL, Prefect, MLflow, Docker, Chromium)"
"$VENV/bin/pytest" -n 2 --dist loadgroup -q --durations=40 "$@"
