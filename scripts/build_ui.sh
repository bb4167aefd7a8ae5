#!/usr/bin/env bash
# Install the web UI's and the browser tests' npm packages (from their lockfiles) when missing or
# stale, regenerate the contracts the UI is built from (ui/src/generated/: the language and the
# API types, from Python), and build the UI into ui/dist (the API serves it at /). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Not `npm ci`: npm 11 refuses a lockfile that lacks other platforms' optional packages
# (tailwind's oxide-*), even one it wrote itself. `install --no-save` takes the locked versions
# and leaves the lockfile untouched.
npm_ci() {  # install in $1 unless node_modules is newer than the lockfile
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error)
  fi
}

npm_ci ui
npm_ci tests/e2e

# ui/src/generated/{language,openapi}.json from Python, then api.d.ts from the OpenAPI schema.
# Committed too (tests/dsl/test_language_export.py and tests/api/test_ui_contracts.py fail on
# drift), so `npm run dev` and `npm test` work without Python; a change here is worth committing.
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" scripts/export_ui_contracts.py
if [ ! -f ui/src/generated/api.d.ts ] || [ ui/src/generated/openapi.json -nt ui/src/generated/api.d.ts ]; then
  (cd ui && npm run generate:api --silent)
fi
if [ ! -f ui/dist/index.html ] || [ -n "$(find ui/src ui/index.html ui/vite.config.* ui/package.json -newer ui/dist/index.html 2>/dev/null | head -1)" ]; then
  (cd ui && npm run build --silent)
fi
