# Sourced by .ci/run: a throwaway PostgreSQL cluster for the store tests, as a non-root user.
# Debian's postgresql package; initdb in a temp dir; listens on 127.0.0.1 only, on a free port;
# AUTOPUBLISH_TEST_DATABASE_URL points at it; stopped and removed on exit.
# Skipped when AUTOPUBLISH_TEST_DATABASE_URL is already set (an existing server) or AUTOPUBLISH_NO_POSTGRES=1.

pg_bin() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$found" ] && echo "$found"
}

start_test_postgres() {
    if [ -n "${AUTOPUBLISH_TEST_DATABASE_URL:-}" ] || [ "${AUTOPUBLISH_NO_POSTGRES:-}" = "1" ]; then
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
    if [ -z "$(pg_bin)" ] && command -v apt-get >/dev/null 2>&1; then
        $sudo apt-get update -qq >/dev/null
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    local bin
    bin="$(pg_bin)"
    if [ -z "$bin" ]; then
        echo "PostgreSQL is not installed; the PostgreSQL store tests will be skipped" >&2
        return 0
    fi
    # PostgreSQL refuses to run as root: use the package's postgres user, or the current user.
    local user
    user="$(id -un)"
    if [ "$(id -u)" = "0" ]; then user="postgres"; fi
    PG_TMP="$(mktemp -d /tmp/autopublish-pg.XXXXXX)"
    chmod 755 "$PG_TMP"
    if [ "$(id -u)" = "0" ]; then chown "$user" "$PG_TMP"; fi
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    as_pg() { if [ "$(id -u)" = "0" ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
    as_pg "$bin/initdb" -D "$PG_TMP/data" -U autopublish -A trust -E UTF8 --no-sync >/dev/null
    # No fsync: a throwaway test cluster (the store's own durability is SQLite's and the server's job).
    as_pg "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null
    export AUTOPUBLISH_TEST_DATABASE_URL="postgresql://autopublish@127.0.0.1:$port/postgres"
    trap stop_test_postgres EXIT
    echo "PostgreSQL for the store tests on 127.0.0.1:$port" >&2
}

stop_test_postgres() {
    if [ -n "${PG_TMP:-}" ]; then
        local bin user
        bin="$(pg_bin)"
        user="$(id -un)"
        if [ "$(id -u)" = "0" ]; then
            runuser -u postgres -- "$bin/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
        else
            "$bin/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$PG_TMP"
        PG_TMP=""
    fi
}
