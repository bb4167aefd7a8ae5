#!/bin/sh
# The entrypoint of alphaforge/postgres-offline (build_offline_images.sh), an OFFLINE stand-in for
# postgres:15 that does what the upstream image's does for infra/compose.yaml: on an empty data
# directory, initdb with POSTGRES_USER / POSTGRES_PASSWORD (scram-sha-256 over TCP), create
# POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sql as POSTGRES_USER; then run postgres on every
# address. POSIX sh with builtins only (the image holds PostgreSQL and dash, no coreutils).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "postgres-offline: POSTGRES_PASSWORD is not set" >&2
  exit 1
fi
if [ "${1:-postgres}" != postgres ]; then
  exec "$@"
fi
if [ $# -gt 0 ]; then shift; fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=/tmp/.pgpass-init
  umask 077
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >/dev/null
  : >"$pwfile"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  # the initialisation server: the local socket only
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -f "$f" ] || continue
    echo "postgres-offline: running $f"
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -q -f "$f"
  done
  pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
  echo "postgres-offline: initialised $PGDATA"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
