#!/bin/sh
# The official postgres image's first start, in short: an empty PGDATA gets
# initdb with POSTGRES_USER/POSTGRES_PASSWORD, then POSTGRES_DB is created
# on a server listening on the Unix socket only; then the real server runs
# as PID 1, listening on all addresses, with the command's options.
set -eu
# Another command than the server (the image's contract): run as it is.
[ "${1:-postgres}" = postgres ] || exec "$@"
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
[ -n "${POSTGRES_PASSWORD:-}" ] || { echo "stand-in postgres: POSTGRES_PASSWORD is not set" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" && chown -R postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pw=$(mktemp); printf '%s' "$POSTGRES_PASSWORD" > "$pw"
	initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
	rm -f "$pw"
	echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
	pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
	if [ "$POSTGRES_DB" != postgres ]; then
		psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "create database \"$POSTGRES_DB\"" >/dev/null
	fi
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo "stand-in postgres: initialised $PGDATA for $POSTGRES_USER/$POSTGRES_DB"
fi
# The server with the given options (compose's command), listening on all
# addresses as the image's postgresql.conf makes it.
[ $# -gt 0 ] && shift
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
