# symcache: `make test` is what CI runs (.ci/run), and all of it. It installs
# redis-server when missing (Debian, as root), runs vet, gofmt and the
# race-enabled tests against real redis-server processes the tests start
# themselves, checks the Dockerfile, the Kubernetes manifests, the Grafana
# dashboard and the Prometheus rules, and ends with the 60 s chaos run.
# `make unit` is the Go tests alone (about 5 min).
GO ?= go

.PHONY: test unit deps vet fmt-check run replay build fuzz bench chaos bench-load bench-compare compare-check compat ui-test

test: unit compat ui-test check-dockerfile check-manifests check-monitoring chaos

unit: deps vet fmt-check compare-check
	$(GO) test -race -count=1 ./...

# bench/compare is a module of its own (the JSON and gzip libraries compared
# stay out of symcache's go.mod): its correctness tests run with make unit,
# its benchmarks with make bench-compare (about 8 minutes).
compare-check:
	cd bench/compare && $(GO) vet ./... && $(GO) test -count=1 ./...

bench-compare:
	cd bench/compare && ./run.sh

# compat/ is a module of its own too (the Binance clients it tests stay out
# of symcache's go.mod): go-binance, ccxt and @binance/connector (Node,
# pinned by compat/node/package-lock.json) with the sidecar as their one
# base URL, and two sidecars sharing a ban through a real redis-server
# (deps), about 20 s. npm ci runs when node_modules is missing or the lock
# changed. The tests mostly wait (for processes, for a Retry-After, for the
# 10 s between admin refreshes), so more of them run at once than there are
# CPUs.
compat: deps compat/node/node_modules/.package-lock.json
	cd compat && $(GO) vet ./... && out=$$(gofmt -l $$(find . -name node_modules -prune -o -name '*.go' -print)) && \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	cd compat && $(GO) test -count=1 -parallel 8 ./...

compat/node/node_modules/.package-lock.json: compat/node/package.json compat/node/package-lock.json
	@if command -v npm >/dev/null; then cd compat/node && npm ci --ignore-scripts --no-audit --no-fund; \
	elif [ "$$CI" = true ]; then echo "npm not found: the Node.js compatibility tests need Node.js 20+ and npm"; exit 1; \
	else echo "npm not found: the Node.js compatibility tests will be skipped"; fi

deps:
	@./scripts/ensure-redis.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# The sidecar against Binance (set BINANCE_*_URL and REDIS_URL as needed).
run:
	$(GO) run ./cmd/sidecar

# Recorded Binance answers on 127.0.0.1:9090, for running the sidecar offline:
#   make replay &  BINANCE_SPOT_URL=http://127.0.0.1:9090 BINANCE_USDM_URL=http://127.0.0.1:9090 make run
replay:
	$(GO) run ./cmd/replay -addr 127.0.0.1:9090 -dir testdata/binance

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o sidecar ./cmd/sidecar

# Short fuzzing of every parser and handler that takes outside input.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./exchangeinfo
	$(GO) test -run '^$$' -fuzz '^FuzzParse_Reference$$' -fuzztime $(FUZZTIME) ./exchangeinfo
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME) ./l2
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelope_Reference$$' -fuzztime $(FUZZTIME) ./l2
	$(GO) test -run '^$$' -fuzz '^FuzzParseURL$$' -fuzztime $(FUZZTIME) ./l2
	$(GO) test -run '^$$' -fuzz '^FuzzParseRetryAfter$$' -fuzztime $(FUZZTIME) ./fetch
	$(GO) test -run '^$$' -fuzz '^FuzzParseQueryAnswer$$' -fuzztime $(FUZZTIME) ./exchangeinfo
	$(GO) test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME) ./rules
	$(GO) test -run '^$$' -fuzz '^FuzzExchangeInfoQuery$$' -fuzztime $(FUZZTIME) ./httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzConvenienceAPI$$' -fuzztime $(FUZZTIME) ./httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzChangeQuery$$' -fuzztime $(FUZZTIME) ./httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzDiff$$' -fuzztime $(FUZZTIME) ./changes
	$(GO) test -run '^$$' -fuzz '^FuzzForward$$' -fuzztime $(FUZZTIME) ./forward

# The chaos test (chaos/): 3 sidecars, one Redis, a fake Binance, faults
# injected for CHAOS_DURATION while clients hammer every endpoint. make unit
# runs it for 8 s; make test (and so CI) for 60 s too. SYMCACHE_CHAOS_SEED
# replays a run.
CHAOS_DURATION ?= 60s
chaos: deps
	SYMCACHE_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -race -count=1 -timeout 10m -run '^TestChaos$$' -v ./chaos

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The Dockerfile and deploy/kubernetes/, checked without a Docker engine or a
# cluster (the checks are in deploy/check, a module of its own; each script's
# header says what it verifies). make test runs both.
.PHONY: check-dockerfile check-manifests
check-dockerfile:
	./scripts/check-dockerfile.sh

check-manifests:
	./scripts/check-manifests.sh

# uitest/ is a module of its own too (chromedp stays out of symcache's
# go.mod): the status page in a headless Chromium, installed from Debian's
# chromium package when missing (as root); about 5 s. It writes a
# screenshot to uitest/artifacts/status.png.
ui-test:
	@./scripts/ensure-chromium.sh
	cd uitest && $(GO) vet ./... && out=$$(gofmt -l .) && \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	cd uitest && $(GO) test -count=1 ./...

# deploy/grafana/ and deploy/prometheus/, checked without a Prometheus or a
# Grafana: promtool check rules and test rules (promtool is installed from
# Debian's prometheus package when missing, as root), and the dashboard's
# JSON. make test runs it; that their metrics exist is a Go test of make unit.
.PHONY: check-monitoring
check-monitoring:
	./scripts/check-monitoring.sh

# The load harness (bench/README.md): symcache vs nginx and Varnish on
# loopback, servers on one CPU and wrk on the other, about 5-6 minutes.
bench-load: deps
	./bench/load.sh
