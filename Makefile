# Two entry points for a fresh machine: `make run` (the main job: the smart home on embedded
# defaults, SQLite and local files, simulating a house for a minute) and `make test`.
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
	$(BIN)/ptr run smart-home --simulate --for 60

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/ptr bench runtime --json
