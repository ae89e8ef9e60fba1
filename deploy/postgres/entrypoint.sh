#!/bin/sh
# Initialise the cluster on first start (user/database `devbox`), then run PostgreSQL in the foreground.
# It listens only on its Unix socket in /var/run/postgresql, a volume shared with the server: no port is
# published, so it never clashes with a PostgreSQL already running on the host.
set -eu
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | tail -1)"
DATA=/var/lib/postgresql/data
SOCKETS=/var/run/postgresql
mkdir -p "$DATA" "$SOCKETS" && chown postgres:postgres "$DATA" "$SOCKETS" && chmod 700 "$DATA"
if [ ! -s "$DATA/PG_VERSION" ]; then
    echo "$POSTGRES_PASSWORD" > /tmp/pwfile && chown postgres /tmp/pwfile
    runuser -u postgres -- "$PGBIN/initdb" -D "$DATA" -U devbox --pwfile=/tmp/pwfile -A scram-sha-256 >/dev/null
    rm /tmp/pwfile
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DATA" -o "-c listen_addresses= -k $SOCKETS" -w start >/dev/null
    PGPASSWORD="$POSTGRES_PASSWORD" runuser -u postgres -- "$PGBIN/createdb" -U devbox -h "$SOCKETS" devbox
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DATA" -w stop >/dev/null
fi
exec runuser -u postgres -- "$PGBIN/postgres" -D "$DATA" -c listen_addresses= -c unix_socket_directories="$SOCKETS"
