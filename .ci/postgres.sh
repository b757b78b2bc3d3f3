#!/bin/sh
# Sets up a local PostgreSQL for the store's contract tests, on Debian 12 as root.
# Idempotent: every step checks before it acts, so running it twice is harmless.
# Afterwards: export DANCU_TEST_DATABASE_URL=postgres://dancu:dancu@127.0.0.1:5432/dancu
set -eu

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi

# Debian 12 ships PostgreSQL 15; take whichever major version is installed.
PG_MAJOR=$(ls /usr/lib/postgresql | sort -n | tail -n 1)

# The package creates the cluster "main" (and may not start it in a container without an init
# system); create it if it is missing, start it if it is down.
if ! pg_lsclusters -h | grep -q "^$PG_MAJOR \+main "; then
    pg_createcluster "$PG_MAJOR" main
fi
if ! pg_lsclusters -h | grep -q "^$PG_MAJOR \+main .* online"; then
    pg_ctlcluster "$PG_MAJOR" main start
fi

# Wait until the server accepts connections.
i=0
until su postgres -c "pg_isready -q -h 127.0.0.1 -p 5432"; do
    i=$((i + 1))
    if [ "$i" -ge 30 ]; then
        echo "PostgreSQL did not start" >&2
        exit 1
    fi
    sleep 1
done

if [ "$(su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'dancu'\"")" != "1" ]; then
    su postgres -c "psql -c \"CREATE ROLE dancu LOGIN SUPERUSER PASSWORD 'dancu'\""
fi
if [ "$(su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = 'dancu'\"")" != "1" ]; then
    su postgres -c "createdb -O dancu dancu"
fi

echo "PostgreSQL ready: postgres://dancu:dancu@127.0.0.1:5432/dancu"
