# Images of hitcounter. compose.yaml builds these targets:
#
#   docker build .                   the server, stage "web" (the last stage)
#   docker build --target migrate .  the one-shot schema migration (tern)
#   docker build --target db .       PostgreSQL with pgBackRest (db, backup)
#
# The server and the migration run on distroless/static: no shell, no
# package manager, user nonroot.
# The Go version must be go.mod's `go` line (deploy/compose_test.go checks it).

FROM golang:1.26.8-trixie AS modules
ENV CGO_ENABLED=0
WORKDIR /src
# Modules in their own layer: downloaded again only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

# tern is a `tool` of go.mod, so go.sum pins it; it needs no source of ours,
# so code changes never rebuild it.
FROM modules AS tern
RUN --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/tern github.com/jackc/tern/v2

FROM modules AS build
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/hitcounter . && \
    go build -trimpath -ldflags="-s -w" -o /out/env ./deploy/env

# `tern migrate` with the migrations folder; DATABASE_URL comes from the
# environment (migrations/tern.conf reads it).
FROM gcr.io/distroless/static-debian13:nonroot AS migrate
COPY --from=tern /out/tern /tern
COPY migrations/tern.conf migrations/*.sql /migrations/
USER nonroot
ENTRYPOINT ["/tern", "migrate", "--migrations", "/migrations", "--config", "/migrations/tern.conf"]

# The database: the pinned postgres image with pgBackRest, which archives
# the WAL (its archive_command) and takes the backups (the backup service
# runs this image too). compose.yaml gives both deploy/pgbackrest.conf.
FROM postgres:17-alpine AS db
RUN apk add --no-cache pgbackrest

# The server. Its health check is `/hitcounter -probe URL` (no curl here);
# /usr/bin/env only prints the environment, for `docker compose exec web env`
# (see deploy/env). Keep this stage last: it is what `docker build .` gives.
FROM gcr.io/distroless/static-debian13:nonroot AS web
COPY --from=build /out/hitcounter /hitcounter
COPY --from=build /out/env /usr/bin/env
USER nonroot
EXPOSE 8000
ENTRYPOINT ["/hitcounter"]
