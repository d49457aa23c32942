# The two commands of the README:  make demo  (main job on the embedded test bed)  and  make test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup build demo test test-unit test-cluster lint bench e2e-kind image clean

setup: $(STAMP)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Build (first run, ~6 min on 2 cores) or reuse the test bed's Go binaries.
build: setup
	$(PY) -m smartid_testbed build

demo: build
	$(PY) -m smartid_testbed up --demo

lint: setup
	$(PY) -m ruff check operator tests bench
	$(PY) -m mypy

test: lint build
	$(PY) -m pytest tests -ra

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-cluster: build
	$(PY) -m pytest tests/cluster -ra

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
