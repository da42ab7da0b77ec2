# Targets document themselves: `make help` lists every target that has a "## " comment.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
FUNCHOST_FLAGS ?=

.DEFAULT_GOAL := help
.PHONY: help build funchost test test-race lint lint-sh run package deploy fuzz reliability bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the handler: bin/handler
	$(GO) build -o bin/handler ./handler

funchost: ## build the local Functions host: bin/funchost
	$(GO) build -o bin/funchost ./handler/cmd/funchost

# Packages whose test binaries do not link msgraph-sdk-go: building that with -race means a cold rebuild of
# the SDK (minutes, gigabytes), so those packages are tested without it.
RACE_PKGS = $(shell $(GO) list -f '{{.ImportPath}} {{join .Deps " "}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... \
	| grep -v -e msgraph-sdk-go -e kiota -e '/internal/graph\( \|$$\)' -e '/internal/e2e ' | cut -d' ' -f1)

# -count=1: the black-box tests (handler/internal/e2e) build bin/handler themselves, which Go's test cache
# cannot see, so a cached result could hide a change to the handler.
test: ## run every test, then -race over the packages that do not link msgraph
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-race

test-race: ## run -race over the packages that do not link msgraph
	$(GO) test -race -timeout 10m $(RACE_PKGS)

lint: lint-sh ## shellcheck, go vet and staticcheck (pinned; go run fetches it)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

run: build funchost ## run bin/handler under bin/funchost on :7071 (the emulated tenant unless APPREG_KEY_VAULT_URL is set)
	bin/funchost -dir . $(FUNCHOST_FLAGS)

# The deployment package: the handler built for Azure's linux/amd64 workers, staged in dist/ as the host needs
# it (host.json, bin/handler, one folder per function) and zipped with the executable bit kept, then checked
# against the contract. -trimpath and the ldflags rebuild msgraph-sdk-go from scratch: minutes, gigabytes.
PACKAGE_ZIP := dist/appreg-func.zip

package: ## build the linux/amd64 handler, stage dist/, zip it to dist/appreg-func.zip and check it
	rm -rf dist
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags='-s -w' -o dist/bin/handler ./handler
	$(GO) run ./handler/cmd/pack -host host.json -handler dist/bin/handler -functions functions -stage dist -out $(PACKAGE_ZIP)

# make deploy RESOURCE_GROUP=<group> [PARAMS=<file>]: Azure CLI, signed in (infra/README.md). The order matters:
# infrastructure, then the Graph grant, then publish, then provision. A managed identity's token is cached for
# up to 24 hours, so a function that ran before the grant would not see its permissions for a day. When the
# signed-in account may not grant Graph permissions, `deploy.sh grant` prints the command for a Privileged
# Role Administrator and stops; run make deploy again afterwards (the infrastructure step is idempotent).
RESOURCE_GROUP ?=
PARAMS ?= infra/main.parameters.json
PUBLISH_TIMEOUT ?= 600
DEPLOY_ENV = RESOURCE_GROUP="$(RESOURCE_GROUP)" PARAMS="$(PARAMS)" PACKAGE="$(PACKAGE_ZIP)" PUBLISH_TIMEOUT="$(PUBLISH_TIMEOUT)"

deploy: ## deploy to RESOURCE_GROUP with PARAMS: infrastructure, Graph grant, publish (retried while roles propagate), provision (needs az, signed in)
	$(DEPLOY_ENV) bash infra/deploy.sh preflight
	$(MAKE) --no-print-directory package
	$(DEPLOY_ENV) bash infra/deploy.sh infra
	$(DEPLOY_ENV) bash infra/deploy.sh grant
	$(DEPLOY_ENV) bash infra/deploy.sh publish
	$(DEPLOY_ENV) bash infra/deploy.sh provision

SHELL_SCRIPTS = $(wildcard infra/*.sh) .ci/run

lint-sh: ## shellcheck the shell scripts (Debian package shellcheck)
	@command -v shellcheck >/dev/null || { echo "shellcheck is not installed: apt-get install -y shellcheck" >&2; exit 1; }
	shellcheck -x $(SHELL_SCRIPTS)

fuzz: ## fuzz the timer invocation decoder, the provision body decoder and the settings parser, FUZZTIME each (default 30s)
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeTimer$$' -fuzztime $(FUZZTIME) ./handler/internal/hostproto
	$(GO) test -run '^$$' -fuzz '^FuzzProvisionBody$$' -fuzztime $(FUZZTIME) ./handler/internal/server
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./handler/internal/config

# The reliability proof of RELIABILITY.md: the oracle's own tests (package emulatortest: the invariants,
# the secret scan, the table writer), every cell of the fault matrix, a crash after every write, the races,
# bad requests and settings, secret hygiene and exposure, the engine's concurrency tests under -race, then
# the fuzzers. `make test` runs the same tests in their short variant (RELIABILITY unset), without -race
# for ./handler. The tables are printed at the end and kept in RELIABILITY_OUT.
#
# The engine's concurrency tests live in package main, whose test binary links msgraph-sdk-go: the first
# -race build compiles that SDK again with the race detector, which takes minutes (about 9 on two cores)
# and gigabytes; later runs come from the build cache.
RELIABILITY_OUT ?= bin/reliability
RELIABILITY_PKGS = ./handler ./handler/internal/e2e
ORACLE_PKGS = ./handler/internal/emulator/emulatortest/...
RACE_ENGINE_TESTS = '^(TestConcurrentRotations|TestReliabilityRaces)$$'
EXPOSURE_TESTS = '^(TestHandlerListensOnLoopbackOnly|TestVerify|TestRoleAssignments|TestNoSecretDefaultsOrOutputs)$$'

reliability: ## the reliability proof in full: faults, crashes, races (also under -race: slow the first time), bad input, hygiene, exposure, fuzzing; writes RELIABILITY.md's tables
	rm -rf $(RELIABILITY_OUT) && mkdir -p $(RELIABILITY_OUT)
	$(GO) test -count=1 $(ORACLE_PKGS)
	RELIABILITY=full RELIABILITY_OUT=$(abspath $(RELIABILITY_OUT)) $(GO) test -count=1 -timeout 40m \
		-run 'Reliability|^TestHandlerListensOnLoopbackOnly$$' $(RELIABILITY_PKGS)
	$(GO) test -count=1 -run $(EXPOSURE_TESTS) ./handler/internal/pack ./infra
	$(GO) test -race -count=1 -timeout 40m -run $(RACE_ENGINE_TESTS) ./handler
	$(GO) test -count=1 -run '^Fuzz' ./handler/internal/hostproto ./handler/internal/server ./handler/internal/config
	$(MAKE) --no-print-directory fuzz
	@for f in $(RELIABILITY_OUT)/*.md; do echo; cat "$$f"; done
	$(GO) run ./handler/cmd/reldoc -dir $(RELIABILITY_OUT) -doc RELIABILITY.md

# The figures of BENCHMARKS.md, each beside its floor and target (issues 7, 11, 13, 14): the first call of a
# new process, round trips to Graph and Key Vault, the sign-in's requests to the token service and latency
# against an emulated tenant, peak RSS, sizes, the cold start to GET / as information, and the fleet (one
# compliance run over 200 instances in 20 emulated tenants). Loopback only; about 30 s after the builds. Writes the tables between BENCHMARKS.md's bench:begin/bench:end
# comments (BENCH_FLAGS=-markdown= writes nothing). BENCH_FLAGS e.g. "-reps 9 -v".
BENCH_FLAGS ?=

bench: build ## measure start-up, round trips, sign-in, latency, memory, size and the fleet beside their floors; write BENCHMARKS.md's tables
	$(GO) run ./handler/cmd/bench -handler bin/handler -markdown BENCHMARKS.md $(BENCH_FLAGS)

clean: ## remove build output and coverage files
	rm -rf bin dist dist.zip coverage.out coverage.html *.coverprofile
