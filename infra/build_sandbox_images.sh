#!/usr/bin/env bash
# Build the sandbox images OFFLINE (no registry is reachable here): a root filesystem assembled
# from this machine's runtimes, imported as a single-layer image.
#
#   alphaforge/sandbox-python:latest   CPython 3.11 (the pyenv build) + numpy, pandas,
#                                      python-dateutil, six, tzdata, wasmtime, torch (CPU) with
#                                      its runtime dependencies, and the entrypoints (no pyarrow:
#                                      runners/sandbox/arrow_ipc.py reads the inputs; strategy
#                                      modules: strategy_entry.py + alphaforge_strategy.py)
#   alphaforge/sandbox-node:latest     Node.js 20 (/usr/bin/node) and node_entry.js
#
# ALPHAFORGE_SANDBOX_TAG (default latest) is the tag pointed at the images built here, the one
# the runner uses (runners/docker/images.py): two checkouts sharing one engine set their own
# and do not move each other's images.
#
# Each image holds only the interpreter, the shared libraries it loads (found with ldd), an
# /etc/passwd with the sandbox user (uid 10001) and /opt/alphaforge. No shell, no package manager.
# Idempotent: an image is rebuilt only when its inputs change (content hash in the tag), so
# `make test` pays the ~30 s once. Digests (image ids) are recorded in $STATE/sandbox-images.json.
# Production images come from infra/Dockerfile.sandbox-python / -node instead.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY_PREFIX=${ALPHAFORGE_SANDBOX_PY_PREFIX:-/root/.pyenv/versions/3.11.7}
SITE=${ALPHAFORGE_SANDBOX_SITE:-$ROOT/.venv/lib/python3.11/site-packages}
NODE_BIN=${ALPHAFORGE_SANDBOX_NODE:-/usr/bin/node}
STATE=${ALPHAFORGE_DATA_DIR:-$ROOT/.alphaforge}
ENTRY=$ROOT/runners/sandbox
TAG=${ALPHAFORGE_SANDBOX_TAG:-latest}
# torch (the CPU build pinned in pyproject.toml) and what it imports at run time (its declared
# dependencies but setuptools, which only torch.utils.cpp_extension needs): training nodes.
# Nodes that do not import torch never load it (see infra/README.md for start-up times).
TORCH_PACKAGES=(torch torchgen functorch typing_extensions.py sympy mpmath networkx jinja2
  markupsafe fsspec filelock)
PACKAGES=(numpy numpy.libs pandas dateutil six.py tzdata wasmtime "${TORCH_PACKAGES[@]}")
# What the entrypoints use: alphaforge_ml.py's torchnets.py is nodes/builtin/_torchnets.py;
# strategy_entry.py and its SDK alphaforge_strategy.py run strategy modules (issue 14);
# tick_strategy_entry.py and alphaforge_tick.py run custom tick strategies (issue 15)
ENTRY_FILES=(python_entry.py wasm_entry.py arrow_ipc.py alphaforge_ml.py torchnets.py
  strategy_entry.py alphaforge_strategy.py tick_strategy_entry.py alphaforge_tick.py)
SANDBOX_UID=10001

# A Python image without its packages would pass the build and fail every custom node at run
# time ("No module named numpy"), and it would become :latest for everyone: refuse instead.
for p in "${PACKAGES[@]}"; do
  if [ ! -e "$SITE/$p" ]; then
    echo "build_sandbox_images: $SITE/$p is missing; set ALPHAFORGE_SANDBOX_SITE to the" \
      "site-packages of the project's virtualenv" >&2
    exit 2
  fi
done

if ! [[ $TAG =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "build_sandbox_images: ALPHAFORGE_SANDBOX_TAG=$TAG is not a Docker tag" >&2
  exit 2
fi

bash "$ROOT/scripts/ensure_docker.sh"
mkdir -p "$STATE"
# One build at a time (pytest-xdist workers may all call this).
exec 8>"$STATE/.sandbox-images.lock"
flock -w 600 8

# copy_libs: the shared libraries every ELF file of a rootfs needs (libraries already inside the
# tree, numpy.libs or torch/lib found through their RPATH, stay where they are: libtorch_cpu.so
# is ~430 MB); reads PY_PREFIX and SITE as set above
# shellcheck source=infra/rootfs_libs.sh
source "$ROOT/infra/rootfs_libs.sh"

base_fs() {
  local rootfs=$1
  mkdir -p "$rootfs"/{etc,tmp,job,out,proc,dev,sys,opt/alphaforge}
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/nonexistent:/sbin/nologin\nsandbox:x:%s:%s:sandbox:/tmp:/sbin/nologin\n' \
    "$SANDBOX_UID" "$SANDBOX_UID" >"$rootfs/etc/passwd"
  printf 'root:x:0:\nsandbox:x:%s:\n' "$SANDBOX_UID" >"$rootfs/etc/group"
}

python_fs() {
  local rootfs=$1 lib=$1/usr/local/lib/python3.11
  base_fs "$rootfs"
  mkdir -p "$rootfs/usr/local/bin" "$lib/site-packages"
  cp -L "$PY_PREFIX/bin/python3.11" "$rootfs/usr/local/bin/python3"
  rsync -a --exclude site-packages --exclude test --exclude tests --exclude idlelib \
    --exclude tkinter --exclude turtledemo --exclude ensurepip --exclude lib2to3 \
    --exclude 'config-3.11-*' "$PY_PREFIX/lib/python3.11/" "$lib/"
  for p in "${PACKAGES[@]}"; do
    # torch: no C++ headers (include), CMake files (share), C++ test binaries (test, bin/test_*)
    rsync -a --exclude tests --exclude '*.pxd' --exclude include \
      --exclude /torch/test --exclude /torch/share --exclude '/torch/bin/*Test' \
      --exclude '/torch/bin/test_*' --exclude '/torch/bin/protoc*' \
      "$SITE/$p" "$lib/site-packages/"
  done
  mkdir -p "$rootfs/lib/x86_64-linux-gnu"
  cp -L "$PY_PREFIX/lib/libpython3.11.so.1.0" "$rootfs/lib/x86_64-linux-gnu/"
  for f in "${ENTRY_FILES[@]}"; do cp -L "$ENTRY/$f" "$rootfs/opt/alphaforge/"; done
  # System time-zone data (from the tzdata package, so the same on every build machine): without
  # it zoneinfo and dateutil fall back to package resources and slow `import pandas` by ~0.15 s.
  mkdir -p "$rootfs/usr/share"
  rsync -a --exclude __pycache__ --exclude "*.py" "$SITE/tzdata/zoneinfo/" "$rootfs/usr/share/zoneinfo/"
  # The root filesystem is read-only at run time: compile the bytecode now.
  "$PY_PREFIX/bin/python3.11" -m compileall -q -j 0 -o 0 -o 2 "$lib" "$rootfs/opt/alphaforge" >/dev/null || true
  copy_libs "$rootfs"
}

node_fs() {
  local rootfs=$1
  base_fs "$rootfs"
  mkdir -p "$rootfs/usr/local/bin"
  cp -L "$NODE_BIN" "$rootfs/usr/local/bin/node"
  cp "$ENTRY/node_entry.js" "$rootfs/opt/alphaforge/"
  copy_libs "$rootfs"
}

# Inputs that determine an image: the entrypoints, this script and the copy_libs it sources,
# the runtime versions.
source_hash() {
  local lang=$1
  {
    cat "$0" "$ROOT/infra/rootfs_libs.sh" "${ENTRY_FILES[@]/#/$ENTRY/}" "$ENTRY"/node_entry.js
    if [ "$lang" = python ]; then
      "$PY_PREFIX/bin/python3.11" --version
      ls "$SITE" | grep -E "^(numpy|pandas|python_dateutil|six|tzdata|wasmtime)-.*dist-info$"
      ls "$SITE" | grep -iE "^(torch|sympy|mpmath|networkx|jinja2|markupsafe|fsspec|filelock|typing_extensions)-.*dist-info$"
    else
      "$NODE_BIN" --version
    fi
  } | sha256sum | cut -c1-16
}

build() {
  local lang=$1 image=alphaforge/sandbox-$1 hash tmp
  hash=$(source_hash "$lang")
  if ! docker image inspect "$image:$hash" >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    "${lang}_fs" "$tmp/rootfs"
    tar -C "$tmp/rootfs" --numeric-owner --owner=0 --group=0 -c . |
      docker import \
        --change "USER $SANDBOX_UID:$SANDBOX_UID" --change 'WORKDIR /tmp' \
        --change "LABEL alphaforge.sandbox.source-hash=$hash" \
        --change 'ENV PATH=/usr/local/bin' \
        - "$image:$hash" >/dev/null
    echo "built $image:$hash" >&2
  fi
  docker tag "$image:$hash" "$image:$TAG"
  docker image inspect --format '{{.Id}}' "$image:$hash"
}

py_id=$(build python)
node_id=$(build node)
cat >"$STATE/sandbox-images.json" <<JSON
{"alphaforge/sandbox-python:$TAG": "$py_id", "alphaforge/sandbox-node:$TAG": "$node_id"}
JSON
echo "sandbox images: python $py_id, node $node_id" >&2
