# `make run`: set up and start the gateway on the embedded model. `make test`: lint + all tests.
# Installs come from hash-locked files in requirements/ (see README "Development"); `make lock`
# regenerates them from pyproject.toml.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# The lock `make install` installs: requirements/$(LOCK).txt, base (no extras) or one extra.
LOCK ?= dev
EXTRAS := dev postgres redis ray finetune bench
LOCKS := base $(EXTRAS)
# pip takes the CPU build of torch from this folder (the machine's PIP_FIND_LINKS); uv needs telling.
TORCH_WHEELS ?= /opt/wheels
TOOLS := .venv-lock
FLOORS_VENV := .venv-floors
FLOORS_TESTS ?= tests
# llama-cpp-python builds from source (no wheel for it on PyPI): compile on every core.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

# A stamp per lock, named by the checksum of what it installs: a changed lock re-installs.
stamp = $(VENV)/.installed-$(1)-$(shell cat requirements/pip.txt requirements/build.txt requirements/$(1).txt pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: install run ask test lint bench bench-gateway system-deps lock lock-upgrade test-floors

# pip first (by hash), then the lock (every file by hash), then smallfirst itself without deps.
# --build-constraint pins the build backends pip fetches for sdists (llama-cpp-python, smallfirst).
define install_lock
$(call stamp,$(1)): requirements/pip.txt requirements/build.txt requirements/$(1).txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --require-hashes -r requirements/pip.txt
	$(PIP) install -q --require-hashes --build-constraint requirements/build.txt -r requirements/$(1).txt
	$(PIP) install -q --no-deps --build-constraint requirements/build.txt -e .
	rm -f $(VENV)/.installed-$(1)-*
	touch $$@
endef
$(foreach lock,$(LOCKS),$(eval $(call install_lock,$(lock))))

install: $(call stamp,$(LOCK))

run: $(call stamp,base)
	$(BIN)/smallfirst serve

ask: $(call stamp,base)
	$(BIN)/smallfirst ask "$(or $(Q),What is the capital of France?)"

system-deps:
	bash scripts/system-deps.sh chromium postgresql redis-server

lint: $(call stamp,dev)
	$(BIN)/python scripts/check_locks.py
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: $(call stamp,dev) system-deps lint
	$(BIN)/python -m pytest

bench: $(call stamp,dev)
	$(BIN)/python benchmarks/embedded.py

# LiteLLM gets a venv of its own: installing it into .venv would change shared packages.
bench-gateway: $(call stamp,dev)
	test -x .venv-bench/bin/litellm || ($(PYTHON) -m venv .venv-bench && .venv-bench/bin/pip install -q --require-hashes -r requirements/pip.txt && .venv-bench/bin/pip install -q --require-hashes --build-constraint requirements/build.txt -r requirements/litellm.txt)
	$(BIN)/python benchmarks/gateway.py

# Regenerate the locks from pyproject.toml, keeping current pins where they still fit;
# `make lock UPGRADE=httpx` moves one package to its newest release, `make lock-upgrade` all.
# uv resolves (seconds; pip-compile gives the same pins and hashes in ~9 minutes), pip installs.
# Extras are resolved within base's pins so that one venv can hold base and any of them; bench and
# litellm (LiteLLM's proxy pins conflict with ours) resolve on their own.
UV_COMPILE = $(TOOLS)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_36 --find-links $(TORCH_WHEELS) --no-emit-find-links \
	--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade-package $(UPGRADE)) $(LOCK_FLAGS)

$(TOOLS)/bin/uv: requirements/pip.txt requirements/uv.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --require-hashes -r requirements/pip.txt
	$(TOOLS)/bin/pip install -q --require-hashes -r requirements/uv.txt
	touch $@

lock: $(TOOLS)/bin/uv
	$(UV_COMPILE) -o requirements/pip.txt requirements/pip.in
	$(UV_COMPILE) -o requirements/uv.txt requirements/uv.in
	$(UV_COMPILE) -o requirements/build.txt requirements/build.in
	$(UV_COMPILE) -o requirements/base.txt pyproject.toml requirements/torch-cpu.in
	for extra in $(filter-out bench,$(EXTRAS)); do \
	  $(UV_COMPILE) -c requirements/base.txt --extra $$extra -o requirements/$$extra.txt \
	    pyproject.toml requirements/torch-cpu.in || exit 1; done
	$(UV_COMPILE) --extra bench -o requirements/bench.txt pyproject.toml requirements/torch-cpu.in
	$(UV_COMPILE) -o requirements/litellm.txt requirements/litellm.in

lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

# The lowest versions pyproject.toml allows for every direct dependency (newest for the rest),
# in a venv of its own, then the suite (FLOORS_TESTS=... for a part of it). Not part of `make test`.
test-floors: $(TOOLS)/bin/uv
	test -x $(FLOORS_VENV)/bin/python || $(PYTHON) -m venv $(FLOORS_VENV)
	$(UV_COMPILE) --resolution lowest-direct --extra dev -o $(FLOORS_VENV)/floors.txt \
	  pyproject.toml requirements/torch-cpu.in
	$(FLOORS_VENV)/bin/pip install -q --require-hashes -r requirements/pip.txt
	$(FLOORS_VENV)/bin/pip install -q --require-hashes --build-constraint requirements/build.txt \
	  -r $(FLOORS_VENV)/floors.txt
	$(FLOORS_VENV)/bin/pip install -q --no-deps -e .
	$(FLOORS_VENV)/bin/ruff check src tests benchmarks
	$(FLOORS_VENV)/bin/python -m pytest $(FLOORS_TESTS)
