#!/bin/sh
# The backup service of compose.yaml, as the postgres user, beside the
# database (its data folder and socket are shared volumes).
#
#   backup.sh schedule   create the stanza and check archiving; a full backup
#                        now if none ended within 26 hours; then a full backup
#                        on Sundays and a differential one on other days, at
#                        03:00 UTC (the systemd timers of bare metal say the
#                        same: compose_test.go compares them). On SIGTERM
#                        (docker compose stop/down, after web has stopped)
#                        `pgbackrest check` archives the WAL of the last
#                        writes, so a `down -v` right after loses none.
#   backup.sh fresh      exit 0 when the newest backup ended within 26 hours
#                        (the healthcheck)
#   backup.sh CMD…       run CMD, e.g. `pgbackrest --stanza=hitcounter info`
set -eu

stanza=hitcounter
at_hour=3     # UTC
full_day=7    # date +%u: Sunday
max_age=93600 # 26 hours: the daily backup and time to take it

pgbr() { pgbackrest --stanza="$stanza" "$@"; }
say() { echo "backup: $*"; }

# newest_stop prints when the newest backup ended (Unix seconds), or nothing.
newest_stop() {
	pgbr --output=json info | grep -o '"stop":[0-9]*' | tail -n 1 | cut -d: -f2
}

# seconds_until prints the seconds from now to the next at_hour:00 UTC.
seconds_until() {
	now=$(date -u +%s)
	wait=$(( (at_hour * 3600 - now % 86400 + 86400) % 86400 ))
	[ "$wait" -gt 0 ] || wait=86400
	echo "$wait"
}

on_stop() {
	say "stopping: archiving the WAL of the last writes"
	if pgbr check; then say "the WAL is archived"; else say "pgbackrest check failed: the last writes may not be archived" >&2; fi
	exit 0
}

schedule() {
	trap on_stop TERM INT
	# The database is healthy when this starts; a stanza that exists is
	# left as it is.
	until pgbr stanza-create; do
		say "stanza-create failed; again in 10 s" >&2
		sleep 10 & wait $!
	done
	pgbr check || say "pgbackrest check failed: see above; archiving is not working" >&2
	# None yet, or none for too long (a restored database, a stack that was
	# down): a full backup now.
	if ! fresh >/dev/null 2>&1; then
		say "no backup in the repository ended within $max_age s: a full one now"
		pgbr --type=full backup || say "the full backup failed" >&2
	fi
	while :; do
		wait=$(seconds_until)
		say "next backup in ${wait}s"
		sleep "$wait" & wait $!
		type=diff
		[ "$(date -u +%u)" = "$full_day" ] && type=full
		say "$type backup"
		pgbr --type="$type" backup || say "the $type backup failed" >&2
	done
}

# fresh succeeds when the newest backup ended within max_age.
fresh() {
	stop=$(newest_stop)
	[ -n "$stop" ] || { echo "no backup" >&2; return 1; }
	age=$(( $(date -u +%s) - stop ))
	[ "$age" -le "$max_age" ] || { echo "the newest backup ended ${age}s ago" >&2; return 1; }
	echo "the newest backup ended ${age}s ago"
}

case ${1:-schedule} in
schedule) schedule ;;
fresh) fresh ;;
*) exec "$@" ;;
esac
