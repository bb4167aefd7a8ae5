#!/usr/bin/env bash
# Install the web UI's and the browser tests' npm packages (from their lockfiles) when missing or
# stale, and build the UI into ui/dist (the API serves it at /). Idempotent.
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
if [ ! -f ui/dist/index.html ] || [ -n "$(find ui/src ui/index.html ui/vite.config.* ui/package.json -newer ui/dist/index.html 2>/dev/null | head -1)" ]; then
  (cd ui && npm run build --silent)
fi
