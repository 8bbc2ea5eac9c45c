# Two commands on a fresh clone (only Python 3.11 needed):  make train  |  make test
# Each creates .venv if missing, installs the pinned CPU torch wheel FIRST, then the package.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.townlet-installed

.PHONY: setup train test test-fast lint check bench constraints clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install "torch==2.13.0"  # exact pin: never let pip resolve an open torch
	$(BIN)/python -m pip install -c constraints.txt -e ".[sweep,slurm,tensorboard,mlflow,wandb,export,baselines,minari,dev]"
	touch $(STAMP)

setup: $(STAMP)

## Run the main job (default config: src/townlet/conf/train.yaml) into outputs/runs/<date>/<time>_train/
train: $(STAMP)
	$(BIN)/townlet-train $(ARGS)

## Static checks (lint, format, types, import layers), then the whole test suite (2 workers), then the
## golden results again under the generic CPU kernels (another float order: they must hold on any x86-64)
test: check
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)
	ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=AVX2 $(BIN)/python -m pytest -n 2 -q tests/golden

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests && $(BIN)/ruff format --check src tests

## What CI checks before the tests: ruff, ruff-format, mypy (src and tests) and the import-layer contracts
check: lint
	$(BIN)/mypy
	$(BIN)/lint-imports

## The speed sections of townlet-bench (src/townlet_tools/bench) into outputs/bench.json
bench: $(STAMP)
	$(BIN)/townlet-bench all --json outputs/bench.json

## Record the installed versions as the tested set (after changing a dependency, then run make test)
constraints:  # from the installed .venv (make setup first)
	{ sed -n 1,2p constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^townlet-train' | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/'; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean-venv:
	rm -rf $(VENV)
