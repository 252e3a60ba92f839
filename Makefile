# crossguard developer entry points. CI (.ci/run) runs `make verify`: fmt, clippy, `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CARGO_TARGET_DIR ?= $(HOME)/.cache/crossguard-target
export CARGO_TARGET_DIR

VENV := $(REPO)/.venv
TOOLS_BIN := $(REPO)/.tools/bin
# Extra arguments for cargo test, e.g. `make test CARGO_TEST_ARGS='-- e2e'`.
CARGO_TEST_ARGS ?=

.PHONY: tools build crds prices test verify demo bench bench-scale bench-memory bench-history bench-store bench-cli clean-demo image

## tools: python venv with moto (.venv) and kubectl + helm (.tools/bin)
tools:
	"$(REPO)/tests/harness/install-tools.sh"

## build: all binaries (operator, fake-apiserver)
build:
	cargo build --workspace --bins

## crds: regenerate crds/*.yaml and charts/crossguard/crds/*.yaml from the Rust types
crds:
	cargo run --quiet -- crdgen

## prices: regenerate data/prices/on-demand.json from data/prices/source/ (the real AWS
## list prices and instance facts; PRICES_SOURCE=../shared/data copies fresh ones in first)
PRICES_SOURCE ?=
prices:
	if [[ -n "$(PRICES_SOURCE)" ]]; then \
	  cp "$(PRICES_SOURCE)/ec2-on-demand-prices.json" "$(PRICES_SOURCE)/ec2-instance-facts.json" "$(REPO)/data/prices/source/"; \
	fi
	cargo run --quiet --bin pricegen -- "$(REPO)"

## test: every test; they find python via CROSSGUARD_VENV, kubectl/helm via PATH
test: tools
	CROSSGUARD_VENV="$(VENV)" PATH="$(TOOLS_BIN):$$PATH" cargo test --workspace $(CARGO_TEST_ARGS)

## verify: formatting, lints, then the tests (which include the CRD-in-sync check)
verify:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory test

## demo: the whole flow against the local harness (fake API server + moto)
demo: tools build
	PATH="$(TOOLS_BIN):$$PATH" "$(REPO)/scripts/demo.sh"

## image: the operator image from Containerfile (release build, buildah or docker/podman);
## IMAGE_ARGS='--smoke' also runs the demo with the operator started from the image
IMAGE_ARGS ?=
image: tools
	"$(REPO)/scripts/image.sh" $(IMAGE_ARGS)

## bench: every benchmark (release build); figures go to BENCHMARKS.md by hand
bench: tools bench-scale bench-memory bench-history bench-store bench-cli
	CROSSGUARD_VENV="$(VENV)" cargo bench --bench broker --bench sanitize --bench analysis --bench dashboard

# The AWS SDK clients are linked into the scale benchmark but never run (the in-memory AWS
# fake stands in for them), and only make a few calls to the emulator in the memory
# benchmark: building them at opt-level 0 saves most of a release build.
SCALE_BENCH_CONFIG := $(foreach c,aws-sdk-ec2 aws-sdk-autoscaling aws-sdk-eks aws-sdk-sts aws-sdk-iam aws-sdk-pricing aws-sdk-savingsplans aws-sdk-kms,--config profile.bench.package.$(c).opt-level=0)
## bench-scale: 100, 300 and 1,000 tenants, five runs of each, a fresh operator per run (BENCHMARKS.md
## "Scale"); SCALE_ARGS='--tenants 1000 --repeat 1' runs one size once
SCALE_ARGS ?=
bench-scale:
	cargo bench $(SCALE_BENCH_CONFIG) --bench scale -- $(SCALE_ARGS)

## bench-store: the store path at 5,000 nodes, plaintext vs encrypted vs encrypted with the
## zeroing allocator (BENCHMARKS.md "Store encryption")
bench-store:
	cargo bench $(SCALE_BENCH_CONFIG) --bench store

## bench-history: a simulated year of one cluster's history in an encrypted file:// store,
## read back (BENCHMARKS.md "History")
bench-history:
	cargo bench $(SCALE_BENCH_CONFIG) --bench history

## bench-memory: the operator's peak memory analysing 1,000- and 5,000-node clusters
## (BENCHMARKS.md "Operator memory per analysis"); CROSSGUARD_BENCH_CLUSTERS=NODESxPODS,…
## picks sizes, CROSSGUARD_BENCH_OPERATOR=/path/to/crossguard measures another build
bench-memory: tools
	CROSSGUARD_VENV="$(VENV)" PATH="$(TOOLS_BIN):$$PATH" cargo bench $(SCALE_BENCH_CONFIG) --bench operator_memory

## bench-cli: `crossguard analyze` on a 5,000-node / 150,000-pod dump against a plain
## parse of it, fresh processes run alternately (BENCHMARKS.md "Analysis");
## CLI_BENCH_ARGS='NODES PODS SEED ROUNDS' picks another dump
CLI_BENCH_ARGS ?=
bench-cli:
	cargo build $(SCALE_BENCH_CONFIG) --profile bench --bin crossguard --example synthetic-dump --example parse-baseline
	"$(REPO)/benches/analyze-cli.sh" $(CLI_BENCH_ARGS)

## clean-demo: stop anything a demo left running and remove .demo/
clean-demo:
	@for f in "$(REPO)"/.demo/*.pid; do \
	  [[ -f $$f ]] || continue; \
	  pid=$$(cat "$$f"); \
	  if [[ -n $$pid ]] && grep -qaE 'crossguard|moto_shim|fake-apiserver' "/proc/$$pid/cmdline" 2>/dev/null; then \
	    kill "$$pid" || true; \
	  fi; \
	done
	rm -rf "$(REPO)/.demo"
