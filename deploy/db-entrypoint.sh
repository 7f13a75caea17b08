#!/bin/sh
# The db service's entrypoint (compose.yaml): the postgres image's own, after
# giving the backup repository to the postgres user. The repository is a
# folder of the host (BACKUP_DIR), which Docker creates owned by root;
# PostgreSQL's archive_command and the backup service write it as postgres.
set -eu
repo=/var/lib/pgbackrest
if [ "$(id -u)" = 0 ] && [ -d "$repo" ]; then
	chown postgres:postgres "$repo"
	# It holds the visitor hashes of the days it covers (README, "Privacy").
	chmod 750 "$repo"
fi
exec /usr/local/bin/docker-entrypoint.sh "$@"
