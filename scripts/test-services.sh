#!/usr/bin/env bash
# What the integration tests talk to, set up from package registries: the official `openai`
# Python package and Playwright in a virtual environment, Debian's Chromium for the browser
# tests of the web UI, and a PostgreSQL server (Debian's package) on loopback. Prints `export NAME=VALUE` lines for scripts/test.sh to evaluate.
# Usage: scripts/test-services.sh start | stop
set -euo pipefail

cache="${LORE_CACHE:-$HOME/.cache/lorekeeper}"
venv="$cache/venv"
# Outside $HOME: the postgres user must be able to reach it.
pgdata="${LORE_TEST_PGDATA:-/var/tmp/lorekeeper-postgres-$(id -u)}"
pgport="${LORE_TEST_PG_PORT:-55432}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && echo "$dir"
}

case "${1:-start}" in
start)
    if ! command -v python3 >/dev/null || ! python3 -c 'import venv' 2>/dev/null; then
        as_root apt-get update -qq >&2
        as_root apt-get install -y -qq python3 python3-venv >&2
    fi
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai, playwright' 2>/dev/null; then
        echo "installing the openai and playwright Python packages into $venv" >&2
        python3 -m venv "$venv" >&2
        # Playwright drives Debian's Chromium (below): it downloads no browser of its own.
        "$venv/bin/pip" install --quiet 'openai>=1.40,<3' 'playwright>=1.45,<2' >&2
    fi
    if [ ! -x /usr/bin/chromium ]; then
        as_root apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >&2
    fi
    if [ -z "$(pg_bin)" ]; then
        as_root apt-get update -qq >&2
        as_root apt-get install -y -qq postgresql >&2
    fi
    bin=$(pg_bin)
    # PostgreSQL refuses to run as root: run it as the postgres user Debian's package makes.
    run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        mkdir -p "$pgdata"
        [ "$(id -u)" = 0 ] && chown postgres "$pgdata"
        run_pg "$bin/initdb" -D "$pgdata" -U lore --auth=trust >/dev/null
    fi
    [ "$(id -u)" = 0 ] && chown -R postgres "$pgdata"
    if ! run_pg "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
        run_pg "$bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w \
            -o "-p $pgport -k /tmp -c listen_addresses=127.0.0.1 -c fsync=on" start >&2
    fi
    run_pg "$bin/psql" -h 127.0.0.1 -p "$pgport" -U lore -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'lore_test'" | grep -q 1 ||
        run_pg "$bin/createdb" -h 127.0.0.1 -p "$pgport" -U lore lore_test
    echo "export LORE_TEST_PYTHON=$venv/bin/python"
    echo "export LORE_TEST_POSTGRES_URL=postgres://lore@127.0.0.1:$pgport/lore_test"
    ;;
stop)
    bin=$(pg_bin) || exit 0
    if [ -f "$pgdata/PG_VERSION" ]; then
        if [ "$(id -u)" = 0 ]; then
            runuser -u postgres -- "$bin/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
        else
            "$bin/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
        fi
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
