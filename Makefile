# Two commands set everything up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

# One source of truth for versions: exact pins of every runtime (and dev) dependency, written by
# `make lock` from the installed venv. `make run`/`make test` and `make bundle` all use them.
RUNTIME_LOCK := requirements/runtime.lock
DEV_LOCK := requirements/dev.lock
# The CPU build of torch (torch==X+cpu). PyPI's torch of the same version is the CUDA build
# (~20 nvidia-* packages, GBs), so torch never comes from PyPI: pip takes it from local disk
# when its find-links has it (--no-index, as on the build machine), else from the CPU index.
TORCH_PIN := $(shell grep -m1 '^torch==' $(RUNTIME_LOCK))
TORCH_VERSION := $(patsubst torch==%,%,$(TORCH_PIN))
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# $(call pip_torch,PIP,ARGS): `PIP install ARGS` or `PIP download ARGS` of the CPU torch alone.
pip_torch = $(1) --quiet --no-index --no-deps $(2) '$(TORCH_PIN)' 2>/dev/null \
	|| $(1) --quiet --no-deps --index-url $(TORCH_CPU_INDEX) $(2) '$(TORCH_PIN)'

.PHONY: run test test-milvus test-postgres test-cluster test-contract bench-replicas e2e console-screenshots quality test-slow test-reliability bench bench-load bench-keyword bench-peers lint \
	typecheck check clean lock bundle bundle-test base-image image image-prune image-test device-kit

$(STAMP): pyproject.toml $(RUNTIME_LOCK) $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(call pip_torch,$(BIN)/pip install)
	$(BIN)/pip install --quiet -c $(RUNTIME_LOCK) -c $(DEV_LOCK) -e '.[dev]'
	$(BIN)/python -c "import torch; v = torch.__version__; assert v == '$(TORCH_VERSION)', v"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/appliance serve

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not quality and not e2e and not milvus and not postgres and not cluster" -q

# The store on PostgreSQL: the store, filter, search, job, key and change-detection tests again
# on a throwaway cluster (initdb in a temp dir, a free loopback port, an unprivileged user;
# tests/postgres_fixtures.py), then the crash test (SIGKILLs during ingest) on it. Needs the
# PostgreSQL server binaries (initdb, pg_ctl); .ci/run installs them when missing.
test-postgres: $(STAMP)
	$(BIN)/python -m pytest -m "postgres and not slow" -q
	CRASH_KILLS=$${CRASH_KILLS:-10} $(BIN)/python -m pytest tests/reliability/test_crash.py -m postgres -q -s

# The web console in headless Chromium (Debian's `chromium`, driven by Playwright) against a
# real `appliance serve`; about a minute. console-screenshots also saves docs/console/*.png.
e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e -m e2e -q

console-screenshots: $(STAMP)
	CONSOLE_SCREENSHOTS=docs/console $(BIN)/python -m pytest tests/e2e -m e2e -q

# The milvus index backend against milvus-lite's gRPC server on a loopback port and a Milvus
# Lite file (tests/test_milvus_*.py, about 2 minutes on 2 cores; pymilvus and milvus-lite come
# with the dev extra).
test-milvus: $(STAMP)
	$(BIN)/python -m pytest -m milvus -q

# Replicas of `appliance serve` over one store behind nginx (deploy/nginx/appliance-replicas.conf,
# Debian's nginx): visibility between replicas, a replica killed under search load.
test-cluster: $(STAMP)
	$(BIN)/python -m pytest tests/cluster -m cluster -q -s

# Retrieval quality on ../shared/data (SciFact, NFCorpus) against the published targets.
# The first run embeds both corpora (about 15 minutes on 2 cores); later runs reuse var/eval.
quality: $(STAMP)
	$(BIN)/python -m pytest -m quality -q -s

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

# pytest-benchmark suites (benchmarks/), each against a baseline measured in the same run; a
# few minutes on 2 cores. Not part of `make test`. Ratios are printed at the end.
bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q -p no:cacheprovider --benchmark-columns=min,median,max,rounds

# Concurrent search throughput of a real server under wrk (Debian package `wrk`) at 1, 8 and
# 32 connections, against the batched-embedding limit of every core measured in the same run;
# then the knee past the queue bound. About 5 minutes; BENCH_LOAD_ARGS="--backend openvino".
BENCH_LOAD_ARGS ?=
bench-load: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python benchmarks/concurrency.py $(BENCH_LOAD_ARGS)

# Throughput of 1, 2 and 3 replicas over one store behind nginx, in one run (wrk, fresh queries).
# BENCH_REPLICAS_ARGS="--database-url postgresql+psycopg://..." for PostgreSQL.
BENCH_REPLICAS_ARGS ?=
bench-replicas: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk
	command -v nginx >/dev/null || apt-get install -y nginx
	$(BIN)/python benchmarks/replicas.py $(BENCH_REPLICAS_ARGS)

# The derived keyword index (appliance/keyword/) against the FTS5 table it replaced, in one run:
# p50/p99 at 100k documents (corpus cached in var/keyword/) and keyword nDCG@10 on SciFact and
# NFCorpus. A script, not a timed test; a few minutes on 2 cores.
bench-keyword: $(STAMP)
	nice $(BIN)/python benchmarks/keyword_index.py

# The appliance beside txtai and Chroma on SciFact (benchmarks/peers.py). The peers live in
# their own venv, never in the appliance's; torch is pinned in the same pip command.
# All of SciFact is ~500 CPU-seconds of embedding per system at 1 thread (~25 minutes for the
# three on an idle box, far longer on a shared one); PEERS_ARGS="--limit-docs 1500" runs a subset.
PEERS_VENV := var/peers-venv
PEERS_STAMP := $(PEERS_VENV)/.installed
PEERS_ARGS ?=

$(PEERS_STAMP): benchmarks/peers-requirements.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(call pip_torch,$(PEERS_VENV)/bin/pip install)
	$(PEERS_VENV)/bin/pip install --quiet '$(TORCH_PIN)' -r benchmarks/peers-requirements.txt
	$(PEERS_VENV)/bin/python -c "import torch; v = torch.__version__; assert v == '$(TORCH_VERSION)', v"
	touch $@

bench-peers: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python benchmarks/peers.py ../shared/data/scifact --peers-python $(PEERS_VENV)/bin/python $(PEERS_ARGS)

# The OpenAPI contract: schemathesis with every check on (stateful phase included, 60 examples
# an operation) against a real server; 0 failures or it fails (tests/contract/). ~1 minute.
test-contract: $(STAMP)
	$(BIN)/python tests/contract/run_schemathesis.py

# Crash safety (>= 20 SIGKILLs), schemathesis (>= 1,000 cases), then the loopback load test.
test-reliability: $(STAMP) test-contract
	$(BIN)/python -m pytest tests/reliability tests/test_hostile_input.py -m "slow and not postgres" -q -s
	$(BIN)/python benchmarks/loadtest.py

# The kit for a lent GPU machine (issue 12 item 9): .devkit/ holds py3.12 wheels of what its
# image lacks, the model (float16-packed) and SciFact; benchmarks/gpu_ingest.sh runs there.
# docs/performance.md, "GPU (item 9): how to run". Needs the network and a python3.12.
device-kit: $(STAMP)
	PYTHON=$(BIN)/python scripts/device_kit.sh

lint: $(STAMP)
	$(BIN)/ruff check appliance tests data benchmarks
	$(BIN)/ruff format --check appliance tests data benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# Rewrite requirements/*.lock from the venv after changing pyproject.toml's dependencies
# (pip install them into .venv first); tests/test_packaging.py checks they agree.
lock: $(STAMP)
	$(BIN)/python scripts/lock.py

# The offline bundle (docs/install.md): dist/local-search-appliance-VERSION.tar.gz holds
# install.sh, a wheelhouse of every runtime dependency pinned by $(RUNTIME_LOCK) (CPython 3.11,
# manylinux x86_64, CPU torch) and the project's wheel, and SHA256SUMS. Built with network.
BUNDLE := dist/local-search-appliance-$(VERSION).tar.gz
BUNDLE_SOURCES := pyproject.toml $(RUNTIME_LOCK) scripts/bundle.sh deploy/bundle/install.sh \
	$(shell find appliance -type f -not -path '*/__pycache__/*')

$(BUNDLE): $(BUNDLE_SOURCES)
	rm -rf build/torch && mkdir -p build/torch
	$(call pip_torch,$(PYTHON) -m pip download,--dest build/torch)
	PYTHON=$(PYTHON) scripts/bundle.sh $(VERSION) $(RUNTIME_LOCK) build/torch $@

bundle: $(BUNDLE)

# Unpack into a fresh temp dir, install with no network (unshare -n), serve there, search.
bundle-test: $(BUNDLE)
	scripts/bundle_test.sh $(BUNDLE)

# The container (Containerfile). podman/buildah here need runc, cgroupfs and explicit ulimits:
# deploy/containers.conf says so for these targets only, never in the system configuration.
export CONTAINERS_CONF := $(CURDIR)/deploy/containers.conf
PODMAN := podman
IMAGE := localhost/local-search-appliance
BASE_IMAGE := localhost/appliance-base:bookworm
# Another base with python3.11 and useradd, e.g. BASE=docker.io/library/python:3.11-slim.
BASE ?= $(BASE_IMAGE)
BASE_ROOTFS_TAR := build/base/bookworm-minbase.tar
DEBIAN_MIRROR ?= http://deb.debian.org/debian

# Debian bookworm (its python3 is 3.11) from Debian's packages, made once and cached.
$(BASE_ROOTFS_TAR):
	rm -rf build/base/rootfs && mkdir -p build/base
	debootstrap --variant=minbase --include=python3,python3-venv bookworm build/base/rootfs \
		$(DEBIAN_MIRROR)
	rm -rf build/base/rootfs/var/cache/apt/archives/*.deb build/base/rootfs/var/cache/apt/*.bin \
		build/base/rootfs/var/lib/apt/lists/*
	tar -C build/base/rootfs -cf $@.tmp . && mv $@.tmp $@
	rm -rf build/base/rootfs

base-image: $(BASE_ROOTFS_TAR)
	$(PODMAN) image exists $(BASE_IMAGE) || $(PODMAN) import $(BASE_ROOTFS_TAR) $(BASE_IMAGE)

# Installs from the bundle with the network off. --format docker keeps the HEALTHCHECK.
image: $(BUNDLE) $(if $(filter $(BASE_IMAGE),$(BASE)),base-image)
	$(PODMAN) build --network none --format docker --build-arg BASE=$(BASE) \
		--build-arg VERSION=$(VERSION) -t $(IMAGE):latest -t $(IMAGE):$(VERSION) -f Containerfile .
	@echo "image $(IMAGE):$(VERSION): $$($(PODMAN) image inspect --format '{{.Size}}' $(IMAGE):$(VERSION) | awk '{printf "%.0f MB", $$1 / 1e6}')"
	$(MAKE) image-prune

# Each build leaves its install stage (3 GB) and, once retagged, the image it replaced (2 GB)
# behind as untagged images. Untagged images with this project's labels are removed; tagged
# images and every other project's stay.
image-prune:
	$(PODMAN) image prune -f --filter label=local-search-appliance.stage=install
	$(PODMAN) image prune -f --filter label=org.opencontainers.image.title=local-search-appliance

# Named volume, loopback port, admin key as a secret; ready, healthy, ingest, search, restart.
image-test: image
	scripts/image_test.sh $(IMAGE):$(VERSION)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache dist build
