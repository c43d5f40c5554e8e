# licenseops — run `make help` for the targets.
GO      ?= go
BIN     := bin/licenseops
PKGS    := ./...
GOBIN   ?= $(shell $(GO) env GOPATH)/bin

.PHONY: help build demo test lint bench deps clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install what a fresh machine lacks (Postgres and Redis binaries, Go modules)
	@./scripts/ensure-deps.sh

build: ## build bin/licenseops
	$(GO) build -o $(BIN) ./cmd/licenseops

DIRECTORY ?= local
demo: deps build ## run a tenant-wide rollout on a demo tenant, end to end (DIRECTORY=graphsim for the Graph simulator)
	./$(BIN) demo --directory $(DIRECTORY) $(DEMO_FLAGS)

test: deps ## go vet and all tests with the race detector, against private Postgres and Redis
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

lint: deps ## go vet, gosec and govulncheck
	$(GO) vet $(PKGS)
	$(GO) install github.com/securego/gosec/v2/cmd/gosec@latest
	$(GO) install golang.org/x/vuln/cmd/govulncheck@latest
	@# Both scanners run even when the first one finds something, so one run
	@# reports everything. VULNDB=file:///path/to/mirror runs govulncheck
	@# without reaching vuln.go.dev.
	status=0; \
	$(GOBIN)/gosec -quiet -exclude-generated ./... || status=1; \
	$(GOBIN)/govulncheck -db $${VULNDB:-https://vuln.go.dev} ./... || status=1; \
	exit $$status

bench: deps build ## end-to-end benchmark (minutes): one table, figures in bench-results/*.json; BENCH_FLAGS="--only a,b"
	./$(BIN) bench --out bench-results/bench-$$(date -u +%Y%m%dT%H%M%SZ).json $(BENCH_FLAGS)

clean: ## remove build output
	rm -rf bin
