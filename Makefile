# Every target creates its own virtual environment, so a fresh clone needs only python3 (>= 3.11).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv lint test unit demo bench binary image clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check entrypoint tests tools
	$(BIN)/mypy --strict entrypoint tests tools

# The container tests need the executable and the images (and install podman if missing).
# The integration suite runs twice: against the development install and against the executable.
test: lint image
	$(BIN)/pytest -q -ra
	ENTRYPOINT_BIN=$(CURDIR)/dist/bin/entrypoint $(BIN)/pytest -q -ra tests/integration

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# BACKEND=oidc-sa-token signs with pod-bound service-account tokens instead of SPIFFE SVIDs.
BACKEND ?= spire
demo: $(STAMP)
	$(BIN)/python tools/demo.py --backend $(BACKEND)

bench: $(STAMP) image
	$(BIN)/python tools/bench.py

# The self-contained executable (dist/bin/); see tools/build_binary.py.
binary: $(STAMP)
	$(BIN)/python tools/build_binary.py

# The entrypoint image and the step images the container tests use; see images/build.sh.
image: binary
	bash images/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
