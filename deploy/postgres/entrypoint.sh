#!/bin/sh
# Initialise the cluster on first start (user/database `devbox`), then run PostgreSQL in the foreground.
set -eu
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | tail -1)"
DATA=/var/lib/postgresql/data
mkdir -p "$DATA" && chown postgres:postgres "$DATA" && chmod 700 "$DATA"
if [ ! -s "$DATA/PG_VERSION" ]; then
    echo "$POSTGRES_PASSWORD" > /tmp/pwfile && chown postgres /tmp/pwfile
    runuser -u postgres -- "$PGBIN/initdb" -D "$DATA" -U devbox --pwfile=/tmp/pwfile -A scram-sha-256 >/dev/null
    rm /tmp/pwfile
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$DATA/pg_hba.conf"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DATA" -o "-c listen_addresses=127.0.0.1" -w start >/dev/null
    PGPASSWORD="$POSTGRES_PASSWORD" runuser -u postgres -- "$PGBIN/createdb" -U devbox -h 127.0.0.1 devbox
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DATA" -w stop >/dev/null
fi
exec runuser -u postgres -- "$PGBIN/postgres" -D "$DATA" -c listen_addresses='*'
