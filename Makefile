# Two entry points for a fresh machine: `make run` (the main job, embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/ptr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/ptr

.PHONY: venv run test bench
venv: $(BIN)/ptr

run: venv
	$(BIN)/ptr run ping --for 10

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/ptr bench runtime --json
