# Targets document themselves: `make help` lists every target that has a "## " comment.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
FUNCHOST_FLAGS ?=

.DEFAULT_GOAL := help
.PHONY: help build funchost test test-race lint run package fuzz clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the handler: bin/handler
	$(GO) build -o bin/handler ./handler

funchost: ## build the local Functions host: bin/funchost
	$(GO) build -o bin/funchost ./handler/cmd/funchost

# Packages whose test binaries do not link msgraph-sdk-go: building that with -race means a cold rebuild of
# the SDK (minutes, gigabytes), so those packages are tested without it.
RACE_PKGS = $(shell $(GO) list -f '{{.ImportPath}} {{join .Deps " "}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... \
	| grep -v -e msgraph-sdk-go -e kiota -e '/internal/graph\( \|$$\)' | cut -d' ' -f1)

test: ## run every test, then -race over the packages that do not link msgraph
	$(GO) test -timeout 20m ./...
	$(MAKE) --no-print-directory test-race

test-race: ## run -race over the packages that do not link msgraph
	$(GO) test -race -timeout 10m $(RACE_PKGS)

lint: ## go vet and staticcheck (pinned; go run fetches it)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

run: build funchost ## run bin/handler under bin/funchost on :7071 (the emulated tenant unless APPREG_KEY_VAULT_URL is set)
	bin/funchost -dir . $(FUNCHOST_FLAGS)

package: build ## stage the deployment in dist/ (host.json, bin/handler, one folder per function) and zip it to dist.zip
	rm -rf dist dist.zip
	mkdir -p dist/bin
	cp host.json dist/
	cp bin/handler dist/bin/handler
	for f in functions/*/function.json; do d=dist/$$(basename $$(dirname $$f)); mkdir -p $$d && cp $$f $$d/; done
	cd dist && zip -qr ../dist.zip .
	@echo "dist.zip: deployment package (built on $$($(GO) env GOOS)/$$($(GO) env GOARCH); Azure runs linux/amd64)"

fuzz: ## fuzz the host invocation decoder for FUZZTIME (default 30s)
	$(GO) test -run '^$$' -fuzz FuzzDecodeTimer -fuzztime $(FUZZTIME) ./handler/internal/hostproto

clean: ## remove build output and coverage files
	rm -rf bin dist dist.zip coverage.out coverage.html *.coverprofile
