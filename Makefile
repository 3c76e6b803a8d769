# leseg — the two commands a new user needs:  make train   and   make test
# Both create the virtual environment on first use (Python >= 3.11 and make are all that is needed).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXPERIMENT ?= supervised_deeplabv3plus-r18-d16_synthetic-city-128x256
ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install train test test-fast lint format benchmark clean

help:  ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade uv
	@# torch and its matching torchvision come from the package registry (constraints.txt pins the
	@# pair); uv is fast, pip is the fallback. Bytecode is compiled once here: imports stay fast
	@# even where PYTHONDONTWRITEBYTECODE is set.
	$(VENV)/bin/uv pip install --compile-bytecode --python $(PY) -c constraints.txt -e '.[dev]' \
	  || $(PY) -m pip install -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install leseg with its dependencies

train: install  ## train the default experiment on synthetic_city (generated on first use), then evaluate it
	$(PY) train.py experiment=$(EXPERIMENT) $(ARGS)
	@run=$$(ls -td outputs/train/$(EXPERIMENT)/*/seed*/*/ | head -n 1); \
	ckpt=$$($(PY) -c "import json,sys; print(json.load(open(sys.argv[1]))['best_checkpoint'])" $$run/metrics.json); \
	echo "Evaluating $$ckpt"; \
	$(PY) eval.py ckpt_path=$$ckpt

test: install  ## run the test suite (set LESEG_SAMPLE_DATA=../shared/data to include the real frames)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install  ## the suite without the slow end-to-end tests
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install  ## ruff lint
	$(VENV)/bin/ruff check .

format: install  ## ruff format + import sorting
	$(VENV)/bin/ruff check --fix --select I .
	$(VENV)/bin/ruff format .

benchmark: install  ## CPU/GPU throughput benchmarks -> benchmarks/results/
	$(PY) benchmarks/run.py

clean:  ## remove caches (keeps .venv, data/ and outputs/)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
