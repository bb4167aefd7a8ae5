#!/usr/bin/env bash
# Build the platform image OFFLINE (no registry is reachable here; the production build is
# infra/Dockerfile): what a Docker-pool flow run, a worker, the API, Prefect's and MLflow's
# servers need, from this machine's runtimes.
#
#   alphaforge/platform-runtime:<hash>   CPython 3.11 (the pyenv build) in /usr/local, the
#                                        platform's run-time closure of the virtualenv's
#                                        site-packages (pyproject's dependencies and what they
#                                        require, hftbacktest; no dev tools: platform_rootfs.py),
#                                        their console scripts, the shared libraries ldd finds,
#                                        time-zone data, /etc/passwd with the platform user
#                                        (uid 10002). One layer (`docker import`).
#   alphaforge/platform:<hash>           the runtime plus the repository's code in
#                                        /opt/alphaforge (on sys.path through a .pth), built
#                                        UI included when ui/dist exists: a second, small layer
#                                        (`docker create` + `docker cp` + `docker commit`), so a
#                                        code change rebuilds seconds, not the 2 GB runtime.
#
# ALPHAFORGE_PLATFORM_TAG (default latest) is the tag pointed at the built platform image
# (two checkouts sharing one engine set their own). Idempotent: each image is rebuilt only when
# its inputs change (content hashes are the tags). Prints the platform image's reference
# (alphaforge/platform:<hash>) on stdout and records it with its id in
# $ALPHAFORGE_DATA_DIR/platform-image.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY_PREFIX=${ALPHAFORGE_PLATFORM_PY_PREFIX:-/root/.pyenv/versions/3.11.7}
VENV_PY=${ALPHAFORGE_PLATFORM_VENV_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$VENV_PY" ] || VENV_PY=$(command -v python)
SITE=${ALPHAFORGE_PLATFORM_SITE:-$("$VENV_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')}
STATE=${ALPHAFORGE_DATA_DIR:-$ROOT/.alphaforge}
TAG=${ALPHAFORGE_PLATFORM_TAG:-latest}
PLATFORM_UID=10002
# the repository's code in the image (what infra/Dockerfile copies, plus what pyproject needs)
CODE=(api catalog cli deployments dsl examples flows live nodes runners pyproject.toml README.md)

if ! [[ $TAG =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "build_platform_image: ALPHAFORGE_PLATFORM_TAG=$TAG is not a Docker tag" >&2
  exit 2
fi
if [ ! -x "$PY_PREFIX/bin/python3.11" ]; then
  echo "build_platform_image: no CPython 3.11 at $PY_PREFIX (set ALPHAFORGE_PLATFORM_PY_PREFIX)" >&2
  exit 2
fi
if [ ! -d "$SITE/prefect" ]; then
  echo "build_platform_image: $SITE has no prefect; set ALPHAFORGE_PLATFORM_SITE to the" \
    "site-packages of the project's virtualenv" >&2
  exit 2
fi

bash "$ROOT/scripts/ensure_docker.sh"
mkdir -p "$STATE"
exec 7>"$STATE/.platform-image.lock"
flock -w 900 7

# copy_libs ROOTFS: the shared libraries ldd finds (shared with build_offline_images.sh)
# shellcheck source=infra/rootfs_libs.sh
source "$ROOT/infra/rootfs_libs.sh"

runtime_fs() {
  local rootfs=$1 lib=$1/usr/local/lib/python3.11
  mkdir -p "$rootfs"/{etc,tmp,proc,dev,sys,opt/alphaforge,usr/local/bin,usr/share}
  mkdir -p "$rootfs/var/lib/alphaforge" "$rootfs/var/lib/alphaforge-sandbox" \
    "$rootfs/home/alphaforge" "$lib/site-packages"
  chmod 1777 "$rootfs/tmp"
  chown "$PLATFORM_UID:$PLATFORM_UID" "$rootfs/var/lib/alphaforge" \
    "$rootfs/var/lib/alphaforge-sandbox" "$rootfs/home/alphaforge"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nalphaforge:x:%s:%s:alphaforge:/home/alphaforge:/sbin/nologin\n' \
    "$PLATFORM_UID" "$PLATFORM_UID" >"$rootfs/etc/passwd"
  printf 'root:x:0:\nalphaforge:x:%s:\n' "$PLATFORM_UID" >"$rootfs/etc/group"
  cp -L "$PY_PREFIX/bin/python3.11" "$rootfs/usr/local/bin/python3.11"
  ln -s python3.11 "$rootfs/usr/local/bin/python3"
  ln -s python3.11 "$rootfs/usr/local/bin/python"
  rsync -a --exclude site-packages --exclude test --exclude tests --exclude idlelib \
    --exclude tkinter --exclude turtledemo --exclude ensurepip --exclude lib2to3 \
    --exclude 'config-3.11-*' "$PY_PREFIX/lib/python3.11/" "$lib/"
  "$VENV_PY" "$ROOT/infra/platform_rootfs.py" files "$SITE" >"$rootfs/.files"
  rsync -a --files-from="$rootfs/.files" "$SITE/" "$lib/site-packages/"
  rm "$rootfs/.files"
  "$VENV_PY" "$ROOT/infra/platform_rootfs.py" scripts "$SITE" "$rootfs/usr/local/bin"
  echo /opt/alphaforge >"$lib/site-packages/alphaforge.pth"
  mkdir -p "$rootfs/lib/x86_64-linux-gnu"
  cp -L "$PY_PREFIX/lib/libpython3.11.so.1.0" "$rootfs/lib/x86_64-linux-gnu/"
  if [ -d /usr/share/zoneinfo ]; then
    rsync -a /usr/share/zoneinfo/ "$rootfs/usr/share/zoneinfo/"
  fi
  if [ -d /etc/ssl/certs ]; then
    mkdir -p "$rootfs/etc/ssl" && cp -rL /etc/ssl/certs "$rootfs/etc/ssl/" 2>/dev/null || true
  fi
  copy_libs "$rootfs"
}

runtime_hash() {
  {
    # how the runtime is made (not the rest of this script: editing the code layer's part
    # must not rebuild 2 GB), the closure's rules, the interpreter and the package versions
    declare -f runtime_fs copy_libs
    cat "$ROOT/infra/platform_rootfs.py"
    "$PY_PREFIX/bin/python3.11" --version
    "$VENV_PY" "$ROOT/infra/platform_rootfs.py" hash "$SITE"
  } | sha256sum | cut -c1-16
}

# The code layer: a tar of the repository's code (as in the working tree: uncommitted edits
# count), deterministic (sorted, fixed owner and times), so its sha256 is its content hash.
code_tar() {
  local out=$1 files
  files=$(cd "$ROOT" && git ls-files -co --exclude-standard -- "${CODE[@]}" |
    grep -v -E '(^|/)(__pycache__|node_modules)/' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
  if [ -d "$ROOT/ui/dist" ]; then
    files+=$'\n'$(cd "$ROOT" && find ui/dist -type f)
  fi
  (cd "$ROOT" && printf '%s\n' "$files" | sort |
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --no-recursion \
      -cf "$out" -T -)
}

runtime=alphaforge/platform-runtime:$(runtime_hash)
if ! docker image inspect "$runtime" >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  runtime_fs "$tmp/rootfs"
  tar -C "$tmp/rootfs" --numeric-owner -c . |
    docker import \
      --change "USER $PLATFORM_UID:$PLATFORM_UID" --change 'WORKDIR /opt/alphaforge' \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'ENV HOME=/home/alphaforge' \
      --change 'ENV PYTHONUNBUFFERED=1' --change 'ENV PREFECT_SERVER_ANALYTICS_ENABLED=false' \
      --change 'ENV DO_NOT_TRACK=1' --change 'ENV ALPHAFORGE_DATA_DIR=/var/lib/alphaforge' \
      --change "LABEL alphaforge.platform.runtime=${runtime#*:}" \
      - "$runtime" >/dev/null
  rm -rf "$tmp"
  trap - EXIT
  echo "built $runtime" >&2
fi
runtime_id=$(docker image inspect --format '{{.Id}}' "$runtime")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
code_tar "$tmp/code.tar"
hash=$({ echo "$runtime_id"; sha256sum <"$tmp/code.tar"; } | sha256sum | cut -c1-16)
image=alphaforge/platform:$hash
if ! docker image inspect "$image" >/dev/null 2>&1; then
  mkdir "$tmp/code"
  tar -C "$tmp/code" -xf "$tmp/code.tar"
  # bytecode now: a flow run would otherwise compile the project on every container start
  "$PY_PREFIX/bin/python3.11" -m compileall -q -j 0 "$tmp/code" >/dev/null || true
  box=$(docker create --label alphaforge.platform.build=1 "$runtime" /usr/local/bin/python3)
  trap 'docker rm -f "$box" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
  tar -C "$tmp/code" --numeric-owner --owner=0 --group=0 -cf - . | docker cp - "$box:/opt/alphaforge"
  docker commit \
    --change "LABEL alphaforge.platform.source-hash=$hash" \
    --change 'CMD ["alphaforge", "api", "--host", "0.0.0.0", "--port", "8000"]' \
    "$box" "$image" >/dev/null
  echo "built $image" >&2
fi
docker tag "$image" "alphaforge/platform:$TAG"
id=$(docker image inspect --format '{{.Id}}' "$image")
cat >"$STATE/platform-image.json" <<JSON
{"image": "$image", "tag": "alphaforge/platform:$TAG", "id": "$id", "runtime": "$runtime"}
JSON
echo "$image"
