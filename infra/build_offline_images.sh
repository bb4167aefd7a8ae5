#!/usr/bin/env bash
# OFFLINE STAND-INS for the production stack's upstream images (infra/compose.offline.yaml):
# this machine reaches no container registry, so postgres:15, minio/minio and haproxy:2.6
# cannot be pulled. Production keeps using those (infra/compose.yaml); these exist only to
# bring the real stack up here (infra/up_offline.sh, tests/infra/test_compose_up.py).
#
#   alphaforge/postgres-offline:<hash>  the host's PostgreSQL 15 (Debian's /usr/lib/postgresql/15
#                                       and /usr/share/postgresql/15), a /bin/sh, and
#                                       postgres-offline-entrypoint.sh: initdb of an empty volume
#                                       with POSTGRES_USER/PASSWORD/DB and the
#                                       /docker-entrypoint-initdb.d/*.sql scripts, as the
#                                       upstream image does; then postgres. uid 999.
#   alphaforge/docker-proxy-offline:<hash>  the host's HAProxy with socket-proxy/haproxy.cfg at
#                                       the upstream image's path.
#   alphaforge/s3-offline:<hash>        NOT MinIO: moto's S3 server (moto[server] from the
#                                       virtualenv, a layer on the platform runtime), in memory:
#                                       its objects are gone when it stops.
#
# The shared libraries come from rootfs_libs.sh (the platform image's copy_libs). Each image's
# tag is its inputs' content hash: rebuilt only when they change. Prints the three references,
# one `NAME=image` line each (POSTGRES_IMAGE, PROXY_IMAGE, S3_IMAGE), on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${ALPHAFORGE_DATA_DIR:-$ROOT/.alphaforge}
PG=${ALPHAFORGE_OFFLINE_PG:-/usr/lib/postgresql/15}
PG_SHARE=${ALPHAFORGE_OFFLINE_PG_SHARE:-/usr/share/postgresql/15}
PG_UID=999
# rootfs_libs.sh's copy_libs: no interpreter or site-packages of the platform's here
PY_PREFIX=/nonexistent-python-prefix
SITE=/nonexistent-site-packages
# shellcheck source=infra/rootfs_libs.sh
source "$ROOT/infra/rootfs_libs.sh"

for tool in "$PG/bin/postgres" "$PG/bin/initdb" "$(command -v haproxy || true)"; do
  if [ ! -x "$tool" ]; then
    echo "build_offline_images: ${tool:-haproxy} missing (apt-get install postgresql-15" \
      "haproxy; scripts/ensure_infra_tools.sh installs haproxy)" >&2
    exit 2
  fi
done
HAPROXY=$(command -v haproxy)
bash "$ROOT/scripts/ensure_docker.sh"
mkdir -p "$STATE"
exec 7>"$STATE/.offline-images.lock"
flock -w 900 7

base_fs() {
  local rootfs=$1
  mkdir -p "$rootfs"/{bin,etc,tmp,proc,dev,sys,usr/bin,usr/share}
  chmod 1777 "$rootfs/tmp"
  # Debian's /bin/sh: the entrypoint, pg_ctl's `sh -c exec postgres`, CMD-SHELL health checks
  cp -L /bin/dash "$rootfs/bin/sh"
}

postgres_fs() {
  local rootfs=$1
  base_fs "$rootfs"
  mkdir -p "$rootfs/usr/lib/postgresql" "$rootfs/usr/share/postgresql" \
    "$rootfs/var/lib/postgresql/data" "$rootfs/var/run/postgresql" \
    "$rootfs/docker-entrypoint-initdb.d"
  cp -a "$PG" "$rootfs/usr/lib/postgresql/15"
  cp -a "$PG_SHARE" "$rootfs/usr/share/postgresql/15"
  # Debian builds with the system's time-zone data
  [ -d /usr/share/zoneinfo ] && cp -a /usr/share/zoneinfo "$rootfs/usr/share/zoneinfo"
  for t in postgres initdb pg_ctl pg_isready psql; do
    ln -s "/usr/lib/postgresql/15/bin/$t" "$rootfs/usr/bin/$t"
  done
  printf 'root:x:0:0:root:/root:/sbin/nologin\npostgres:x:%s:%s:PostgreSQL:/var/lib/postgresql:/bin/sh\n' \
    "$PG_UID" "$PG_UID" >"$rootfs/etc/passwd"
  printf 'root:x:0:\npostgres:x:%s:\n' "$PG_UID" >"$rootfs/etc/group"
  cp "$ROOT/infra/postgres-offline-entrypoint.sh" "$rootfs/usr/bin/postgres-offline-entrypoint"
  chmod 755 "$rootfs/usr/bin/postgres-offline-entrypoint"
  # a new named volume takes the image directory's owner: initdb runs as postgres
  chown -R "$PG_UID:$PG_UID" "$rootfs/var/lib/postgresql" "$rootfs/var/run/postgresql"
  chmod 700 "$rootfs/var/lib/postgresql/data"
  copy_libs "$rootfs"
}

proxy_fs() {
  local rootfs=$1
  base_fs "$rootfs"
  mkdir -p "$rootfs/usr/local/sbin" "$rootfs/usr/local/etc/haproxy" "$rootfs/var/lib/haproxy"
  cp -L "$HAPROXY" "$rootfs/usr/local/sbin/haproxy"
  cp "$ROOT/infra/socket-proxy/haproxy.cfg" "$rootfs/usr/local/etc/haproxy/haproxy.cfg"
  printf 'root:x:0:0:root:/root:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\n' >"$rootfs/etc/group"
  copy_libs "$rootfs"
}

# import_image NAME HASH FN CHANGES...: the image NAME:HASH from FN's rootfs, unless it exists
import_image() {
  local name=$1 hash=$2 fn=$3 tmp
  shift 3
  local image=$name:$hash
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    "$fn" "$tmp/rootfs"
    local changes=()
    for c in "$@"; do changes+=(--change "$c"); done
    tar -C "$tmp/rootfs" --numeric-owner -c . |
      docker import "${changes[@]}" --change "LABEL alphaforge.offline-standin=1" - "$image" >/dev/null
    rm -rf "$tmp"
    echo "built $image" >&2
  fi
  echo "$image"
}

fn_hash() {
  { declare -f base_fs copy_libs "$@"; } | sha256sum | cut -c1-16
}

pg_hash=$({
  fn_hash postgres_fs
  cat "$ROOT/infra/postgres-offline-entrypoint.sh"
  "$PG/bin/postgres" --version
  dpkg-query -W -f '${Version}\n' postgresql-15 2>/dev/null || true
} | sha256sum | cut -c1-16)
pg_image=$(import_image alphaforge/postgres-offline "$pg_hash" postgres_fs \
  "USER $PG_UID:$PG_UID" 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin' \
  'ENV PGDATA=/var/lib/postgresql/data' 'EXPOSE 5432' \
  'ENTRYPOINT ["/usr/bin/postgres-offline-entrypoint"]' 'CMD ["postgres"]')

proxy_hash=$({
  fn_hash proxy_fs
  cat "$ROOT/infra/socket-proxy/haproxy.cfg"
  "$HAPROXY" -v | sed -n 1p
} | sha256sum | cut -c1-16)
proxy_image=$(import_image alphaforge/docker-proxy-offline "$proxy_hash" proxy_fs \
  'ENV PATH=/usr/local/sbin:/usr/bin:/bin' 'EXPOSE 2375' \
  'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]')

# moto's S3 server: its closure (platform_rootfs.py) as a layer on the platform runtime
runtime=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["runtime"])' \
  "$STATE/platform-image.json" 2>/dev/null || true)
if [ -z "$runtime" ] || ! docker image inspect "$runtime" >/dev/null 2>&1; then
  echo "build_offline_images: no platform runtime recorded in $STATE/platform-image.json:" \
    "run infra/build_platform_image.sh first" >&2
  exit 2
fi
VENV_PY=${ALPHAFORGE_PLATFORM_VENV_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$VENV_PY" ] || VENV_PY=$(command -v python)
VSITE=${ALPHAFORGE_PLATFORM_SITE:-$("$VENV_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')}
S3_REQ='moto[server]'
s3_hash=$({
  docker image inspect --format '{{.Id}}' "$runtime"
  cat "$ROOT/infra/platform_rootfs.py"
  "$VENV_PY" "$ROOT/infra/platform_rootfs.py" hash "$VSITE" "$S3_REQ"
} | sha256sum | cut -c1-16)
s3_image=alphaforge/s3-offline:$s3_hash
if ! docker image inspect "$s3_image" >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  mkdir -p "$tmp/layer/usr/local/lib/python3.11/site-packages" "$tmp/layer/usr/local/bin"
  "$VENV_PY" "$ROOT/infra/platform_rootfs.py" files "$VSITE" "$S3_REQ" >"$tmp/files"
  rsync -a --files-from="$tmp/files" "$VSITE/" "$tmp/layer/usr/local/lib/python3.11/site-packages/"
  "$VENV_PY" "$ROOT/infra/platform_rootfs.py" scripts "$VSITE" "$tmp/scripts" "$S3_REQ"
  cp "$tmp/scripts/moto_server" "$tmp/layer/usr/local/bin/moto_server"
  box=$(docker create --label alphaforge.platform.build=1 "$runtime" /usr/local/bin/python3)
  tar -C "$tmp/layer" --numeric-owner --owner=0 --group=0 -cf - . | docker cp - "$box:/"
  docker commit --change 'LABEL alphaforge.offline-standin=1' --change 'EXPOSE 9000' \
    --change 'WORKDIR /home/alphaforge' \
    --change 'CMD ["moto_server", "-H", "0.0.0.0", "-p", "9000"]' "$box" "$s3_image" >/dev/null
  docker rm -f "$box" >/dev/null
  rm -rf "$tmp"
  echo "built $s3_image" >&2
fi

echo "POSTGRES_IMAGE=$pg_image"
echo "PROXY_IMAGE=$proxy_image"
echo "S3_IMAGE=$s3_image"
