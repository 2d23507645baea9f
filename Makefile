# Every target creates its own virtual environment, so a fresh clone needs only python3 (>= 3.11).
# Everything it installs comes from the one lock, requirements.lock, hash-checked (tools/lock.py).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements.lock

.PHONY: venv lock lock-check lint test unit integration integration-peers stress fuzz e2e e2e-peers demo bench binary image peers clean

# The venv is made anew from the lock (never upgraded in place), with the pip that comes with
# Python; the project itself is built by the locked setuptools, without build isolation.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) tools/lock.py check
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

venv: $(STAMP)

# Renew the lock on purpose, checked; review the diff.  Pins already there are kept (a new
# dependency renews nothing else); UPGRADE=1 takes the newest releases pyproject.toml allows.
lock:
	$(PYTHON) tools/lock.py renew $(if $(UPGRADE),--upgrade)
	$(PYTHON) -m tests.support.sigstore_python renew $(if $(UPGRADE),--upgrade)

# Fails at once, naming `make lock`, when pyproject.toml's requirements changed since the lock.
lock-check:
	$(PYTHON) tools/lock.py check

lint: lock-check $(STAMP)
	$(BIN)/ruff check entrypoint tests tools
	$(BIN)/mypy --strict entrypoint tests tools

# The container tests need the executable and the images (and install podman if missing).
# The end-to-end tests need the real peers (Go 1.26 and the module proxy; ~15 min cold, nothing warm).
# The integration suite runs twice: against the development install and against the executable.
test: lint image e2e-peers integration-peers
	$(BIN)/pytest -q -ra
	ENTRYPOINT_BIN=$(CURDIR)/dist/bin/entrypoint $(BIN)/pytest -q -ra tests/integration

unit: lock-check $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: lock-check $(STAMP) integration-peers
	$(BIN)/pytest -q -ra tests/integration

# The integration suite, development install and executable, RUNS times in a row, every core
# kept busy by another process (tools/stress.py).
RUNS ?= 5
stress: lock-check binary integration-peers
	$(BIN)/python tools/stress.py --runs $(RUNS)

# Property tests with many examples (hypothesis) and coverage-guided fuzzing of the parser and the
# verifier (atheris, tools/fuzz.py); `make test` runs both briefly.  FUZZ_RUNS=1000000: ~30 min.
FUZZ_RUNS ?= 100000
fuzz: lock-check $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q tests/unit/test_properties.py
	$(BIN)/python tools/fuzz.py --runs $(FUZZ_RUNS)

# The end-to-end tests against real peers: tools/peers.sh builds etcd, kube-apiserver and Tekton's
# controller from the Go module proxy (Go 1.26 needed; tools/peers.sh has the cold build times), then
# tests/e2e starts them on free loopback ports (`tools/peers.sh start [tekton]`/`stop`).  `make test`
# builds them too and runs tests/e2e with the rest.
E2E_PEERS := etcd kube-apiserver kubectl tekton-controller
e2e-peers:
	bash tools/peers.sh build $(E2E_PEERS)

# The integration suite signs against the real Fulcio too (tests/integration/test_sigstore_real_fulcio.py;
# ~75 s cold, nothing warm).
INTEGRATION_PEERS := fulcio
integration-peers:
	bash tools/peers.sh build $(INTEGRATION_PEERS)

e2e: lock-check $(STAMP) e2e-peers
	$(BIN)/pytest -q -ra tests/e2e

# BACKEND=oidc-sa-token signs with pod-bound service-account tokens instead of SPIFFE SVIDs.
BACKEND ?= spire
demo: $(STAMP)
	$(BIN)/python tools/demo.py --backend $(BACKEND)

# bench pairs the executable with Tekton's own Go entrypoint (make peers builds it: ~5 min cold).
bench: $(STAMP) image peers
	$(BIN)/python tools/bench.py

# Real Go peers from the Go module proxy at pinned versions, into build/peers/ (tools/peers.sh).
peers:
	bash tools/peers.sh build

# The self-contained executable (dist/bin/); see tools/build_binary.py.
binary: $(STAMP)
	$(BIN)/python tools/build_binary.py

# The entrypoint image and the step images the container tests use; see images/build.sh.
image: binary
	bash images/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
