# Two entry points bootstrap everything on a fresh machine:
#   make demo   - runs passops end to end on embedded defaults and shows it working
#   make test   - lint, type-check and the whole test suite (emulator + real kube-apiserver tiers)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit kube-apiserver clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/passops demo

# Builds kube-apiserver once from Debian's source package (~4 min) and caches it; where that is
# impossible, the real-API tier skips and says why.
kube-apiserver:
	-bash scripts/build-kube-apiserver.sh

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

test: $(VENV)/.test-installed kube-apiserver lint typecheck
	PASSOPS_BUILD_KUBE=1 $(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
