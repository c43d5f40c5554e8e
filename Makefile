# licenseops — run `make help` for the targets.
GO      ?= go
BIN     := bin/licenseops
DEVBIN  := bin/licenseops-dev
PKGS    := ./...
GOBIN   ?= $(shell $(GO) env GOPATH)/bin

.PHONY: help build build-dev demo test test-ops lint bench bench-console screenshots deps clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install what a fresh machine lacks (Postgres and Redis binaries, Go modules)
	@./scripts/ensure-deps.sh

build: ## build bin/licenseops
	$(GO) build -o $(BIN) ./cmd/licenseops

build-dev: ## build bin/licenseops-dev, the developer tools (demo, bench, graphsim)
	$(GO) build -o $(DEVBIN) ./cmd/licenseops-dev

DIRECTORY ?= local
demo: deps build-dev ## run a tenant-wide rollout on a demo tenant, end to end (DIRECTORY=graphsim for the Graph simulator)
	./$(DEVBIN) demo --directory $(DIRECTORY) $(DEMO_FLAGS)

test: deps test-ops ## go vet and all tests with the race detector, against private Postgres and Redis
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

MODEL_RUNS ?= 300
MODEL_SEED ?= $(shell date +%s)
.PHONY: soak
soak: deps ## the randomized model test (worker TestModel) for longer: MODEL_RUNS runs (300) from MODEL_SEED (the clock)
	LICENSEOPS_MODEL_RUNS=$(MODEL_RUNS) LICENSEOPS_MODEL_SEED=$(MODEL_SEED) $(GO) test -race -count=1 -timeout 60m -run '^TestModel$$' -v ./worker

.PHONY: test-faults
test-faults: deps ## the fault suite (about 4 minutes): real api and worker processes, workers killed, Postgres and Redis restarted, Redis failed over under Sentinel and run as a Cluster
	$(GO) vet -tags faultinject ./faults/... ./api/... ./intake/...
	$(GO) test -tags faultinject -race -count=1 -timeout 15m ./faults/...

test-ops: ## check alerts (and their unit tests), prometheus.yml, dashboards and docker-compose.yml; installs promtool, docker-compose
	@./scripts/check-ops.sh

lint: deps ## gofmt, go vet, gosec and govulncheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) install github.com/securego/gosec/v2/cmd/gosec@v2.30.0
	$(GO) install golang.org/x/vuln/cmd/govulncheck@v1.9.0
	@# Both scanners run even when the first one finds something, so one run
	@# reports everything. VULNDB=file:///path/to/mirror runs govulncheck
	@# without reaching vuln.go.dev. govulncheck exits 3 on findings, which
	@# fail; failing to fetch the database over HTTP(S) only skips it, so that
	@# machines without access to it can lint. Any other error fails.
	status=0; \
	$(GOBIN)/gosec -quiet -exclude-generated ./... || status=1; \
	out=$$($(GOBIN)/govulncheck -db "$${VULNDB:-https://vuln.go.dev}" ./... 2>&1); rc=$$?; \
	why=$$(printf '%s\n' "$$out" | grep -Eo 'fetching vulnerabilities: (Get "|HTTP GET )https?://.*' | head -n 1); \
	if [ $$rc -ne 0 ] && [ $$rc -ne 3 ] && [ -n "$$why" ]; then \
		echo "govulncheck skipped: vulnerability database unreachable ($${why#fetching vulnerabilities: })"; \
	else \
		printf '%s\n' "$$out"; \
		[ $$rc -eq 0 ] || status=1; \
	fi; \
	exit $$status

bench: deps build build-dev ## end-to-end benchmark (many minutes) on a durable private Postgres: one table with verdicts, figures in bench-results/*.json; BENCH_FLAGS="--only a,b,scale --users 20000"
	./$(DEVBIN) bench --exe $(BIN) --out bench-results/bench-$$(date -u +%Y%m%dT%H%M%SZ).json $(BENCH_FLAGS)

bench-console: deps ## the web console's page benchmarks (Manage licenses for 10,000 selected users, a users page)
	$(GO) test -run '^$$' -bench . -benchtime 20x -count 1 ./console

screenshots: deps ## PNGs of every console page in docs/console/, taken by the browser test in Chromium
	rm -f docs/console/*.png
	LICENSEOPS_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run '^TestBrowser(PartnerProcedure|Reader|Cancel)$$' ./console

clean: ## remove build output
	rm -rf bin
