# Two commands set everything up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch lies on this machine's disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: run test test-milvus quality test-slow test-reliability bench bench-peers lint typecheck check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet $(TORCH_PIN) -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/appliance serve

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not quality and not milvus" -q

# The milvus index backend against milvus-lite's gRPC server on a loopback port and a Milvus
# Lite file (tests/test_milvus_*.py, about 2 minutes on 2 cores; pymilvus and milvus-lite come
# with the dev extra).
test-milvus: $(STAMP)
	$(BIN)/python -m pytest -m milvus -q

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

# The appliance beside txtai and Chroma on SciFact (benchmarks/peers.py). The peers live in
# their own venv, never in the appliance's; torch is pinned in the same pip command.
# All of SciFact is ~500 CPU-seconds of embedding per system at 1 thread (~25 minutes for the
# three on an idle box, far longer on a shared one); PEERS_ARGS="--limit-docs 1500" runs a subset.
PEERS_VENV := var/peers-venv
PEERS_STAMP := $(PEERS_VENV)/.installed
PEERS_ARGS ?=

$(PEERS_STAMP): benchmarks/peers-requirements.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet $(TORCH_PIN) -r benchmarks/peers-requirements.txt
	$(PEERS_VENV)/bin/python -c "import torch; v = torch.__version__; assert v.startswith('2.13.0'), v"
	touch $@

bench-peers: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python benchmarks/peers.py ../shared/data/scifact --peers-python $(PEERS_VENV)/bin/python $(PEERS_ARGS)

# Crash safety (>= 20 SIGKILLs), schemathesis (>= 1,000 cases), then the loopback load test.
test-reliability: $(STAMP)
	$(BIN)/python -m pytest tests/reliability tests/test_hostile_input.py -m slow -q -s
	$(BIN)/python benchmarks/loadtest.py

lint: $(STAMP)
	$(BIN)/ruff check appliance tests data benchmarks
	$(BIN)/ruff format --check appliance tests data benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache
