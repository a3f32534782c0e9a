# Proofline: `make run` starts the suite, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: install proto lint test fuzz run bench clean

# The editable install maps the generated `proofline` package only if it exists at install time,
# so code is generated between the dependency install and a second, dependency-free install.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) scripts/gen_protos.py
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) proto

# Generated code is never committed: it is rebuilt from protos/ before every test, run and lint.
proto: $(STAMP)
	$(PY) scripts/gen_protos.py

lint: proto
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint
	$(BIN)/buf breaking --against protos/baseline/v1.binpb

# The fuzz suite runs grpc.aio servers on a second event loop: it gets a pytest process of its own.
test: proto
	$(BIN)/pytest -q --ignore=tests/fuzz
	$(BIN)/pytest -q tests/fuzz

# The fuzz suite (tests/fuzz) with many more examples per RPC than `make test` runs.
fuzz: proto
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(BIN)/pytest -q tests/fuzz --timeout=3600

run: proto
	$(PY) -m proofline_tools.devstack

bench: proto
	$(PY) -m bench

clean:
	rm -rf gen .devdata
