#!/usr/bin/env bash
# A throwaway local PostgreSQL for the store-layer tests (Debian's postgresql package).
#
#   deploy/postgres.sh start    initdb once, start on 127.0.0.1:$PGPORT (55432); no-op if running
#   deploy/postgres.sh stop
#   deploy/postgres.sh url      print the SQLAlchemy URL the tests use
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGPORT="${PGPORT:-55432}"
PGDIR="${KOKEILU_PG_DIR:-/tmp/kokeilu-pg-$PGPORT}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"

as_owner() {
  if [[ "$(id -u)" == "0" ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  [[ -n "$BIN" ]] || { echo "postgres: not installed (apt-get install postgresql)" >&2; exit 1; }
  if as_owner "$BIN/pg_ctl" -D "$PGDIR" status >/dev/null 2>&1; then echo "postgres: running on 127.0.0.1:$PGPORT" >&2; return; fi
  if [[ ! -f "$PGDIR/PG_VERSION" ]]; then
    mkdir -p "$PGDIR"
    [[ "$(id -u)" == "0" ]] && chown postgres:postgres "$PGDIR"
    as_owner "$BIN/initdb" -D "$PGDIR" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  as_owner "$BIN/pg_ctl" -D "$PGDIR" -l "$PGDIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k /tmp -c fsync=off -c full_page_writes=off" start >/dev/null
  echo "postgres: running on 127.0.0.1:$PGPORT" >&2
}

stop() {
  if [[ -n "$BIN" ]] && as_owner "$BIN/pg_ctl" -D "$PGDIR" status >/dev/null 2>&1; then
    as_owner "$BIN/pg_ctl" -D "$PGDIR" -m fast stop >/dev/null
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "postgresql+psycopg2://postgres@127.0.0.1:$PGPORT/postgres" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
