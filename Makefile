# The two commands of the README: `make run` and `make test`.
# Both set up what they need on a fresh machine (see scripts/deps).

GO    ?= go
BIN   := bin/hitcounter
PGDIR := .pgdata

.PHONY: run counters test faults test-ha fuzz test-compose build generate check-generated lint bench db-url db-stop db-delete clean

# Go itself is the one thing these targets cannot install (Debian's golang
# package is older than go.mod's go line).
ifeq ($(shell command -v $(GO)),)
$(error Go is not installed: install Go $(shell sed -n 's/^go //p' go.mod) or newer from https://go.dev/dl/ and put it on PATH)
endif

## run: build, start a local PostgreSQL unless DATABASE_URL is set, migrate, serve on :8000
run: build
	@scripts/deps postgresql
	@if [ -z "$$DATABASE_URL" ]; then \
		DATABASE_URL=$$(scripts/pg start $(PGDIR)) || exit 1; export DATABASE_URL; \
		echo "using a local PostgreSQL in $(PGDIR)/ (stop it with: make db-stop; psql \"\$$(make -s db-url)\")"; \
	fi; \
	echo "next: open the address in the 'listening' line below; a counter for another page: make counters ARGS='create blog', then open /c/blog there"; \
	exec ./$(BIN) -migrate

## counters: the owner's controls on make run's database (or DATABASE_URL), e.g. make counters ARGS='create blog'
counters: build
	@if [ -z "$$DATABASE_URL" ]; then \
		DATABASE_URL=$$(scripts/pg start $(PGDIR)) || exit 1; export DATABASE_URL; \
	fi; \
	exec ./$(BIN) counters $(ARGS)

## test: everything CI checks: generated files, gofmt, vet, all tests (and each benchmark once) on a throwaway PostgreSQL,
##       real nginx and headless Chromium, (as root) the deployment with docker compose, the fault suite
##       and the high-availability suite
test: check-generated lint
	@scripts/deps postgresql chromium nginx openssl pgbackrest
	@[ "$$(id -u)" = 0 ] || echo "make test: the deployment test (docker compose on a private engine) needs root: skipped"
	HITCOUNTER_COMPOSE_TEST=1 scripts/with-test-db $(GO) test -race -count=1 -timeout 40m ./...
	@# Every benchmark once, so one that no longer runs fails here, not in make bench.
	scripts/with-test-db $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=3000x
	@$(MAKE) --no-print-directory faults
	@$(MAKE) --no-print-directory test-ha

## fuzz: each fuzz target (func Fuzz… in a _test.go file) for FUZZTIME, from its seeds and testdata/fuzz;
##       make test gives each 3000 inputs rather than a time: Go 1.26's fuzzer can report its own time
##       limit as a failure ("context deadline exceeded", golang/go#75804, fixed in Go 1.27);
##       a failing input is written there: commit it with the fix, and go test replays it
FUZZTIME ?= 1m
fuzz:
	@scripts/deps postgresql
	@scripts/with-test-db sh -c 'set -e; \
		for dir in $$(grep -rl --include="*_test.go" "^func Fuzz" . | xargs -n1 dirname | sort -u); do \
		for target in $$(sed -n "s/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p" $$dir/*_test.go); do \
			echo "fuzz $$dir $$target for $(FUZZTIME)"; \
			$(GO) test -run "^$$" -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -parallel 4 $$dir; \
		done; done'

## faults: the fault suite: the real binary on a PostgreSQL of its own, 32 clients clicking through a
##         restart, a crash, killed sessions, a frozen server, a 30s outage, SIGTERM, SIGKILL behind nginx,
##         a crash whose COMMIT in flight has its transaction id handed out again before the lookup
faults: build
	@scripts/deps postgresql nginx openssl
	$(GO) run ./internal/cmd/faults

## test-ha: the high-availability suite: etcd and 3 Patroni nodes (deploy/patroni.yml) on loopback, two apps on
##          the multi-host URL, 32 clients clicking through the primary's loss, a crash of PostgreSQL alone, a
##          switchover, a stalled sync standby, and a reissued transaction id; first the harness's own tests
##          and the store's lookup of a COMMIT that reached the primary alone (TestCommittedMeansReplicated)
test-ha: build
	@scripts/deps postgresql patroni
	HITCOUNTER_HA_TEST=1 $(GO) test -count=1 -timeout 15m ./internal/patroni/
	HITCOUNTER_HA_TEST=1 $(GO) test -count=1 -timeout 10m -run '^TestCommittedMeansReplicated$$' ./db/
	$(GO) run ./internal/cmd/faults -ha

## test-compose: only the deployment and its restore drill for real, as root: compose.yaml and the Dockerfile, unmodified, on a
##        private Docker Engine with local stand-ins for the registry images (scripts/docker-stack)
test-compose:
	HITCOUNTER_COMPOSE_TEST=1 $(GO) test -count=1 -timeout 40m -run '^(TestDeploymentWithCompose|TestBackupRestoreWithCompose)$$' -v ./deploy/

build: generate
	$(GO) build -trimpath -o $(BIN) .

generate:
	@out=$$($(GO) generate ./... 2>&1) || { echo "$$out"; exit 1; }

## check-generated: fail when templ would change the *_templ.go files (stale in the commit)
check-generated:
	@state() { git status --porcelain -- '*_templ.go'; git diff -- '*_templ.go'; }; \
	before=$$(state); out=$$($(GO) generate ./... 2>&1) || { echo "$$out"; exit 1; }; after=$$(state); \
	if [ "$$before" != "$$after" ]; then \
		echo "generated *_templ.go files were stale; 'go generate ./...' refreshed them: commit them"; \
		git status --short -- '*_templ.go'; exit 1; \
	fi

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

## bench: one table of the real binary under load (clicks coalesced and not, polls, page views),
##        on a throwaway PostgreSQL with durable commits; then the Go benchmarks.
##        BASELINE=rev (e.g. BASELINE=HEAD~3) also measures that commit's build's clicks in turns with this one's
BASELINE ?=
bench: build
	@scripts/deps postgresql nginx openssl
	@if [ -n "$(BASELINE)" ]; then \
		tree=$$(mktemp -d) && git worktree add --quiet --detach "$$tree" "$(BASELINE)" && \
		(cd "$$tree" && $(GO) build -trimpath -o "$(CURDIR)/bin/hitcounter-baseline" .); \
		status=$$?; git worktree remove --force "$$tree"; exit $$status; \
	fi
	PG_OPTS= scripts/with-test-db sh -c '$(GO) run ./internal/cmd/bench -cpu-profile bin/clicks.pprof \
		$(if $(BASELINE),-baseline bin/hitcounter-baseline) && \
		$(GO) test -run "^$$" -bench . -benchtime 1s ./...'

## db-url: the URL of make run's local PostgreSQL, e.g. psql "$$(make -s db-url)"
db-url:
	@scripts/pg url $(PGDIR)

db-stop:
	@scripts/pg stop $(PGDIR)

## db-delete: stop make run's local PostgreSQL and delete it with every count in it, once you type yes
##            (or CONFIRM=yes)
db-delete:
	@if [ ! -e $(PGDIR) ]; then echo "no local database in $(PGDIR)/"; exit 0; fi; \
	if [ "$(CONFIRM)" != yes ]; then \
		printf 'This deletes the local database in %s/ and every count in it. Type yes to go on: ' "$(PGDIR)"; \
		read answer || true; [ "$$answer" = yes ] || { echo "kept $(PGDIR)/"; exit 1; }; \
	fi; \
	scripts/pg stop $(PGDIR); target=$$(readlink $(PGDIR) || true); rm -rf $(PGDIR) $${target:+"$$target"}; \
	echo "deleted $(PGDIR)/"

## clean: remove what the build made (bin/); the local database stays (make db-delete removes it)
clean:
	rm -rf bin
