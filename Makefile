# Quick start: `make demo` and `make test`; each creates or refreshes .venv itself.
# `make demo` also writes checkerboard.png (the checkerboard study's outputs) and digits.npz
# (the weights `npconv train digits` learns).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamps re-install when pyproject.toml changes.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[bench,train]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/npconv info
	$(BIN)/npconv bench --quick
	$(BIN)/npconv demo checkerboard --out checkerboard.png
	$(BIN)/npconv summary mobilenet_v2
	$(BIN)/npconv train digits

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -q

bench: $(VENV)/.installed-demo
	$(BIN)/npconv bench

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis checkerboard.png digits.npz
