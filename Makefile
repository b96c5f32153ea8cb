# Floe — `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --warn-undefined-variables

# Pebble is pure Go without cgo; the binary is static.
export CGO_ENABLED ?= 0

GO      ?= go
TOOL    := $(GO) tool -modfile=tools/go.mod
BIN     := bin/floe
# google/api protos ship inside this (old) grpc-gateway module; the openapiv2
# options come from the v2 module pinned in tools/go.mod.
GOOGLEAPIS_MODULE := github.com/grpc-ecosystem/grpc-gateway@v1.16.0
PROTODEPS := .protodeps

.PHONY: help
help: ## Show this help
	@if [ -t 1 ]; then c='\033[36m'; r='\033[0m'; else c=; r=; fi; \
	grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' -v c="$$c" -v r="$$r" '{printf "  %s%-15s%s %s\n", c, $$1, r, $$2}'

.PHONY: build
build: ## Build the floe binary into bin/
# -buildvcs=auto stamps the commit (floe --version) when git is there, even
# where GOFLAGS turns it off.
	$(GO) build -trimpath -buildvcs=auto -o $(BIN) ./cmd/floe

.PHONY: run
run: build ## Run a broker with the embedded defaults (data in ./floe-data)
	./$(BIN)

.PHONY: test
test: ## Run all tests (unit, end-to-end, crash and kill tests)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	cd tools && $(GO) test -count=1 ./profsplit ./gostates

.PHONY: race
race: ## Run all tests with the race detector (needs cgo: gcc)
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

.PHONY: bench
bench: build ## Run the standard benchmark matrix and write BENCHMARKS.md
	./$(BIN) bench matrix --out BENCHMARKS.md

.PHONY: profile
profile: build ## Split the broker's CPU in each produce case of the matrix (a markdown table)
	bench/profile-cases.sh

.PHONY: gobench
gobench: ## Run the Go benchmarks (store, gateway)
	$(GO) test -run '^$$' -bench . -benchtime 3s ./...

.PHONY: fuzz
fuzz: ## Run each fuzz target for 30s
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s $$pkg; \
	  done; \
	done

.PHONY: lint
lint: protodeps ## Lint the protos (buf) and the Go code (go vet, gofmt)
	$(TOOL) buf lint
	$(GO) vet ./...
	cd tools && $(GO) vet ./openapifix ./profsplit ./gostates
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); exit 1; }

.PHONY: protodeps
protodeps: ## Copy the third-party protos (google/api, openapiv2 options) from the Go module cache
	@v1=$$($(GO) mod download -json $(GOOGLEAPIS_MODULE) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
	v2=$$($(GO) list -modfile=tools/go.mod -m -f '{{.Dir}}' github.com/grpc-ecosystem/grpc-gateway/v2); \
	test -n "$$v2" || v2=$$($(GO) mod download -modfile=tools/go.mod -json github.com/grpc-ecosystem/grpc-gateway/v2 | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
	rm -rf $(PROTODEPS); mkdir -p $(PROTODEPS)/google/api $(PROTODEPS)/google/rpc $(PROTODEPS)/protoc-gen-openapiv2/options; \
	cp $$v1/third_party/googleapis/google/api/{annotations,http,httpbody}.proto $(PROTODEPS)/google/api/; \
	cp $$v1/third_party/googleapis/google/rpc/status.proto $(PROTODEPS)/google/rpc/; \
	cp $$v2/protoc-gen-openapiv2/options/{annotations,openapiv2}.proto $(PROTODEPS)/protoc-gen-openapiv2/options/; \
	chmod -R u+w $(PROTODEPS)

.PHONY: generate
generate: protodeps ## Regenerate gen/ from proto/ (Go, gRPC, gateway, OpenAPI)
	$(TOOL) buf lint
	$(TOOL) buf generate
	cd tools && $(GO) run ./openapifix ../gen/openapiv2/floe.swagger.json ../gen/openapiv3/floe.openapi.json
	$(TOOL) buf build --as-file-descriptor-set -o gen/floe.protoset\#format=binpb

.PHONY: checkgenerate
checkgenerate: generate ## Fail when gen/ differs from what proto/ generates
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
	  git status --porcelain -- gen; git --no-pager diff --stat -- gen; \
	  echo "gen/ is out of date with proto/: run 'make generate' and commit the result" >&2; exit 1; \
	fi

.PHONY: docker
docker: ## Build the container image (needs a Docker engine)
	docker build -t floe .

.PHONY: clean
clean: ## Remove build outputs
	rm -rf bin $(PROTODEPS)
