# faceharvest: build, test, lint, benchmark, run.
# Needs only Go; every tool is installed into ./bin/tools by the targets that use it.

GO        ?= go
BIN       := bin
TOOLS     := $(abspath $(BIN)/tools)
STATICCHECK_VERSION := v0.8.2
# Fuzzing runs for a number of inputs, not a duration: with a duration the engine can end on
# "context deadline exceeded" when a busy 2-core machine keeps a worker past the deadline.
FUZZTIME  ?= 100000x
PKGS      := ./...

.PHONY: all build test unit soak-test fuzz lint bench wrk awscli chromium minio kustomize promtool image docs run clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## test: the S3-compatible server, awscli, Chromium, kustomize and promtool, unit, contract and process tests with the race detector, then brief fuzzing.
test: minio awscli chromium kustomize promtool unit fuzz

unit:
	$(GO) mod download
	# -timeout bounds each package's test binary: generous, as a loaded 2-core machine runs pkg/harvester
	# under the race detector for many minutes.
	$(GO) test -race -count=1 -timeout 30m $(PKGS)
	# The full-scale harvester run (10,000 verifications) without the race detector's tenfold slowdown.
	$(GO) test -count=1 -timeout 30m -run '^TestTenThousandWithFaultsStormsAndRebalance$$' ./pkg/harvester

## soak-test: the race-enabled suite (make unit) while another process keeps one core busy: a busy loop the
## target starts, bounded by SOAK_MAX_SECONDS, and stops when the suite ends. The tests must pass on a loaded machine.
SOAK_MAX_SECONDS ?= 3600
soak-test: minio awscli chromium kustomize promtool
	@timeout $(SOAK_MAX_SECONDS) sh -c 'while :; do :; done' & busy=$$!; \
	trap 'kill $$busy 2>/dev/null' EXIT INT TERM; \
	start=$$(date +%s); \
	$(MAKE) unit; rc=$$?; \
	echo "soak-test: make unit with one core kept busy ended with exit code $$rc after $$(( $$(date +%s) - start )) s"; \
	exit $$rc

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParseResult$$' -fuzztime=$(FUZZTIME) ./pkg/megvii
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeCallback$$' -fuzztime=$(FUZZTIME) ./pkg/megvii
	$(GO) test -run='^$$' -fuzz='^FuzzSummarize$$' -fuzztime=$(FUZZTIME) ./pkg/megvii
	$(GO) test -run='^$$' -fuzz='^FuzzFindImages$$' -fuzztime=$(FUZZTIME) ./pkg/megvii
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./pkg/baidu

MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c

## minio: the S3-compatible server the object-store contract tests run against (built from source).
minio: $(TOOLS)/minio

$(TOOLS)/minio:
	GOBIN=$(TOOLS) $(GO) install github.com/minio/minio@$(MINIO_VERSION)

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(TOOLS)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(TOOLS)/staticcheck $(PKGS)

## bench: benchmarks, each reported next to a baseline measured in the same run, ingest tried as a stranger
## would (slow connections: peak RSS under 64 MiB; forged landings: nothing published), then the whole pipeline
## (store and broker alone as its ceiling) and one table of every figure (bin/bench-report.json).
bench: wrk minio build
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 -timeout 20m $(PKGS)
	$(GO) run ./bench/ingest -out $(BIN)/bench-ingest.json
	$(GO) run ./bench/ingestabuse -ingest-bin $(BIN)/ingest -out $(BIN)/bench-ingestabuse.json
	$(GO) run ./bench/harvester -out $(BIN)/bench-harvester.json
	$(GO) run ./bench/archiver -out $(BIN)/bench-archiver.json
	$(BIN)/devstack --bin $(BIN) --data-dir $(BIN)/bench-pipeline-data --free-ports --bench-steady-rate=40 --bench-rate=200 --bench-for=30s --bench-out $(BIN)/bench-pipeline.json
	$(GO) run ./bench/report -dir $(BIN) -out $(BIN)/bench-report.json

# awscli (Debian's package): the archiver's test reads what it stored with a real S3 client.
awscli:
	@command -v aws >/dev/null || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli) >/dev/null || { echo "install awscli (apt-get install awscli)"; exit 1; }; }

# chromium (Debian's package): the audit page's test drives it headless (cmd/auditor); with CI set
# (to anything) that test fails without it.
chromium:
	@command -v chromium >/dev/null || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null || { echo "install chromium (apt-get install chromium)"; exit 1; }; }

# wrk (Debian's package) generates HTTP load from a separate process.
wrk:
	@command -v wrk >/dev/null || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >/dev/null || { echo "install wrk (apt-get install wrk)"; exit 1; }; }

## run: the whole pipeline on loopback (broker, MinIO, vendor simulator, ingest, harvester, archiver as processes),
## a workload driven through it, live progress and a summary; Ctrl-C stops everything. RUN_ARGS=--help lists the options.
RUN_ARGS ?=
run: build minio
	$(BIN)/devstack --bin $(BIN) $(RUN_ARGS)

## docs: regenerate docs/configuration.md from the binaries' --help and docs/metrics.md from the components'
## registries (a test fails when either is stale).
docs:
	FACEHARVEST_UPDATE_DOCS=1 $(GO) test -count=1 -run '^(TestConfigurationDocIsCurrent|TestMetricsDocIsCurrent)$$' ./deploy

## image: the container image (ingest, harvester, archiver, auditor, ledger, faceharvest), for machines with a container engine.
IMAGE ?= faceharvest:dev
CONTAINER_ENGINE ?= $(shell command -v docker || command -v podman)
image:
	@test -n "$(CONTAINER_ENGINE)" || { echo "make image needs docker or podman"; exit 1; }
	$(CONTAINER_ENGINE) build -t $(IMAGE) --build-arg VERSION=$$(git describe --tags --always --dirty 2>/dev/null) --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null) .

KUSTOMIZE_VERSION := v5.7.1

## kustomize: renders deploy/k8s in the tests (v5.7.1: newer releases need a newer Go).
kustomize: $(TOOLS)/kustomize

$(TOOLS)/kustomize:
	GOBIN=$(TOOLS) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

## promtool: Prometheus's rule checker and unit-test runner, for the alert rule tests (deploy/rules).
## Taken from Debian's prometheus package without installing it (no daemon, no dependencies): about
## 2 s, where building it from source takes minutes.
promtool: $(TOOLS)/promtool

$(TOOLS)/promtool:
	@mkdir -p $(TOOLS)
	@d=$$(mktemp -d) && cd $$d && { apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; }; } \
		&& dpkg-deb --fsys-tarfile prometheus_*.deb | tar -xO ./usr/bin/promtool > $@.tmp && chmod +x $@.tmp && mv $@.tmp $@; \
		rc=$$?; rm -rf $$d; [ $$rc -eq 0 ] || { rm -f $@.tmp; echo "promtool: apt-get download prometheus failed"; exit 1; }
	$@ --version | head -1

clean:
	rm -rf $(BIN)
