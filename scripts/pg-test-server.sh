#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests.
#   scripts/pg-test-server.sh start DIR   # initdb + start; DSN in DIR/dsn
#   scripts/pg-test-server.sh stop DIR    # stop and remove DIR
#   scripts/pg-test-server.sh restart DIR # crash (immediate stop) and start
#                                         # again, keeping the data
#
# The server listens on a Unix socket under DIR only (no TCP). PostgreSQL
# refuses to run as root, so as root the cluster belongs to the `postgres`
# user (data and socket directories are chowned to it). The database is
# `ringfence_test`; its user has password `ringfence-test-secret` (password
# authentication over the socket, so tests can check that the password never
# appears in an error message).
set -euo pipefail

PG_BIN="${PG_BIN:-}"
if [ -z "$PG_BIN" ]; then
  for v in 17 16 15; do
    if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then
      PG_BIN="/usr/lib/postgresql/$v/bin"
      break
    fi
  done
fi
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  echo "pg-test-server: no PostgreSQL server binaries found (install postgresql;" \
    "or set PG_BIN)" >&2
  exit 1
fi

usage() {
  echo "usage: $0 start|stop|restart DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd="$1"
dir="$2"
data="$dir/data"
sock="$dir/sock"

# Runs a command as the cluster owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    # Unix socket paths are limited to 107 bytes.
    if [ "$(printf '%s' "$sock/.s.PGSQL.5432" | wc -c)" -gt 107 ]; then
      echo "pg-test-server: \"$dir\" is too long a path for a Unix socket" \
        "directory; use a shorter DIR" >&2
      exit 1
    fi
    if [ -f "$data/postmaster.pid" ]; then
      # A cluster left running by an interrupted run: stop it first.
      as_owner "$PG_BIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$data" "$sock"
    # The owner must be able to reach DIR through every parent directory.
    chmod 755 "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$dir"; fi
    pwfile="$dir/pwfile"
    echo "ringfence-test-secret" >"$pwfile"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$pwfile"; fi
    as_owner "$PG_BIN/initdb" -D "$data" -U ringfence --pwfile="$pwfile" \
      --auth=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    rm -f "$pwfile"
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$sock'
max_connections = 200
shared_buffers = 32MB
CONF
    as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start \
      >/dev/null || {
      cat "$dir/server.log" >&2
      exit 1
    }
    PGPASSWORD=ringfence-test-secret "$PG_BIN/psql" -h "$sock" -U ringfence \
      -d postgres -qAt -c "CREATE DATABASE ringfence_test" >/dev/null
    echo "host=$sock dbname=ringfence_test user=ringfence password=ringfence-test-secret" \
      >"$dir/dsn"
    echo "pg-test-server: PostgreSQL ($("$PG_BIN/postgres" --version)) on socket $sock"
    ;;
  restart)
    # As a crash: no shutdown checkpoint; the start runs crash recovery.
    # Only for a server of its own (the chaos test's), never the shared one.
    as_owner "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
    as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start \
      >/dev/null || {
      cat "$dir/server.log" >&2
      exit 1
    }
    ;;
  stop)
    if [ -f "$data/postmaster.pid" ]; then
      # Immediate: the cluster is thrown away, no shutdown checkpoint needed.
      as_owner "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
    fi
    rm -rf "$dir"
    ;;
  *)
    usage
    ;;
esac
