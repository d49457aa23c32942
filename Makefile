# The two commands of the README:  make demo  (main job on the embedded test bed)  and  make test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml testbed/pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup build demo test test-unit test-cluster lint bench e2e-kind image clean

setup: $(STAMP)
$(STAMP): pyproject.toml testbed/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' -e ./testbed
	touch $@

# Build (first run, ~6 min on 2 cores) or reuse the test bed's Go binaries.
build: setup
	$(PY) -m smartid_testbed build

demo: build
	$(PY) -m smartid_testbed up --demo

lint: setup
	$(PY) -m ruff check operator testbed tests bench
	$(PY) -m mypy

test: lint build
	$(PY) -m pytest tests -ra

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-cluster: build
	$(PY) -m pytest tests/cluster -ra

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Tier 3, for machines with Docker and kind (not these): a kind cluster, the operator image,
# the official mongo image, the same kustomize manifests, the same outage checks.
KIND_CLUSTER ?= smartid-e2e
IMAGE ?= smartid-operator:0.1.0

image:
	docker build -f deploy/Dockerfile -t $(IMAGE) .

e2e-kind: setup image
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --wait 120s
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	kubectl --context kind-$(KIND_CLUSTER) apply --server-side -k deploy/
	kubectl --context kind-$(KIND_CLUSTER) -n smartid rollout status deployment/smartid-operator --timeout=180s
	kubectl --context kind-$(KIND_CLUSTER) apply --server-side -k deploy/samples
	kubectl config use-context kind-$(KIND_CLUSTER)
	$(PY) -m pytest tests/kind -ra

bench: build
	$(PY) bench/apply_to_ready.py
	$(PY) bench/tenant_doc_query.py
