# Stand-in for postgres:17-alpine: Debian's PostgreSQL (15) with the official
# image's first-start contract (POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB, PGDATA), pg_isready on PATH, and the data folder it uses.
# pgBackRest is installed already (Debian's package), so that the db stage's
# `apk add --no-cache pgbackrest` finds it: apk here only checks.
FROM hitcounter-standin/base
COPY pgbackrest_*.deb /tmp/
RUN dpkg -i /tmp/pgbackrest_*.deb && rm /tmp/pgbackrest_*.deb
COPY apk /sbin/apk
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
RUN mkdir -p /var/lib/postgresql/data /var/run/postgresql && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
