#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the optimizer tests and print its URL.
#
#   URL=$(scripts/start_postgres.sh)          # installs Debian's postgresql if missing, starts a cluster
#   export MOLVAE_TEST_POSTGRES_URL=$URL
#   scripts/start_postgres.sh --stop DIR      # stop the cluster in DIR (printed on stderr at start)
#
# The cluster lives in a temporary directory owned by the `postgres` user, trusts loopback
# connections only, and holds one database (molvae_test). Log lines go to stderr, the URL alone to
# stdout. Environment: MOLVAE_PG_DIR (data directory; default a new mktemp dir), MOLVAE_PG_PORT
# (default: a free port).
set -euo pipefail

log() { echo "start_postgres: $*" >&2; }

pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    return 1
}

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

if [ "${1:-}" = "--stop" ]; then
    dir=${2:?usage: start_postgres.sh --stop DIR}
    as_postgres "$(pg_bin)/pg_ctl" -D "$dir" -m fast stop >&2
    exit 0
fi

if ! BIN=$(pg_bin); then
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN=$(pg_bin)
fi
if ! id postgres >/dev/null 2>&1; then
    log "no 'postgres' user; creating it"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

DIR=${MOLVAE_PG_DIR:-$(mktemp -d /tmp/molvae-pg.XXXXXX)}
mkdir -p "$DIR"
chown postgres "$DIR"
chmod 700 "$DIR"
PORT=${MOLVAE_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

if [ ! -f "$DIR/PG_VERSION" ]; then
    as_postgres "$BIN/initdb" -D "$DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
fi
# Loopback only, socket in the data directory (no need for /var/run/postgresql), a small footprint.
as_postgres "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=100 -c shared_buffers=32MB -c fsync=off" \
    start >&2
as_postgres "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres molvae_test 2>/dev/null || true
log "data directory $DIR (stop with: scripts/start_postgres.sh --stop $DIR)"
echo "postgresql://postgres@127.0.0.1:$PORT/molvae_test"
