# prrmse: `make demo` runs the whole study on the embedded phantoms, `make test` runs the tests.
# Both create (or reuse) the virtual environment .venv from the pinned lock file.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
CORES ?= 2
# when this make began: `make demo` records its wall time from here, the install included
MAKE_STARTED := $(shell date +%s)
PYTEST_ARGS ?=
UV_VERSION := 0.13.9

.PHONY: venv demo test test-slow lint lock report bench bench-gpu

# uv installs the lock in 55 s where pip takes 140 s (2 cores; torch's CUDA build is 5.5 GB on
# disk, and pip unpacks and byte-compiles it on one core). Byte-compiled at install because
# processes may run with PYTHONDONTWRITEBYTECODE (then every import of torch & co. would compile
# again). Where uv cannot be had, pip does it.
$(VENV)/.installed: requirements.lock pyproject.toml tools/uv_sources.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); then \
	  sources="$$($(BIN)/python tools/uv_sources.py)" && \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode $$sources -r requirements.lock && \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python $$sources --no-deps -e .; \
	else \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock && \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .; \
	fi
	@touch $@

venv: $(VENV)/.installed

# The run is then recorded in DVC (dvc.lock): `dvc status` clean, `dvc repro` a no-op,
# `prrmse lineage` of every figure and table trusted.
# `prrmse serve` forks each job from one process that imported torch & co. once.
demo: venv
	prrmse serve -- snakemake --cores $(CORES) --configfile config/config.yaml
	prrmse dvc-record --config config/config.yaml
	python benchmarks/workflow.py record-demo --started $(MAKE_STARTED) --cores $(CORES)

test: venv
	pytest -m "not slow and not slurm" $(PYTEST_ARGS)

test-slow: venv
	pytest -m "slow" $(PYTEST_ARGS)

# The HTML report of a finished demo run (`make demo` first): captioned figures and tables.
report: venv
	snakemake --report results/report.html --configfile config/config.yaml

# Training and sweep benchmarks (~10 min on 2 idle cores): ratios, machine, threads, with the last
# `make demo`'s wall time and a no-op `dvc repro` of its record -> results/bench.md.
bench: venv
	python benchmarks/summary.py --out results/bench.md

# On a machine with CUDA: the paper-scale sweep and training throughput (bf16, channels_last
# vs fp32 eager), ratios and peak memory in one run; without CUDA it says so and exits 0.
bench-gpu: venv
	python benchmarks/gpu.py

lint: venv
	ruff check src tests benchmarks tools
	ruff format --check src tests benchmarks tools
	lint-imports
	snakefmt --check Snakefile workflow/rules
	snakemake --lint --configfile config/config.yaml

# Regenerate the lock from a venv that installed pyproject's dependencies (maintainers only).
lock: venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -e '^prrmse' -e '^uv==' > requirements.lock
