#!/usr/bin/env bash
# Start the real API (and the built UI) on 127.0.0.1:${PORT:-8000} with a throw-away data dir.
# Usage: tests/e2e/serve_api.sh            (prints the data dir; Ctrl-C to stop)
# Env:   ALPHAFORGE_ADMIN_PASSWORD (default "admin-e2e-password"), PORT.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export ALPHAFORGE_DATA_DIR="${ALPHAFORGE_DATA_DIR:-$(mktemp -d /tmp/alphaforge-e2e.XXXXXX)}"
export ALPHAFORGE_ADMIN_PASSWORD="${ALPHAFORGE_ADMIN_PASSWORD:-admin-e2e-password}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
echo "data dir: $ALPHAFORGE_DATA_DIR" >&2
cd "$ROOT"
exec .venv/bin/python -c "from api.server import serve; serve(port=int('${PORT:-8000}'))"
