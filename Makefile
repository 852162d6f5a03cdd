# `make run`: set up and start the gateway on the embedded model. `make test`: lint + all tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
EXTRAS ?= dev

.PHONY: install run ask test lint bench bench-gateway system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: install
	$(BIN)/smallfirst serve

ask: install
	$(BIN)/smallfirst ask "$(or $(Q),What is the capital of France?)"

system-deps:
	bash scripts/system-deps.sh chromium postgresql redis-server

lint: install
	$(BIN)/ruff check src tests benchmarks

test: install system-deps lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/embedded.py

# LiteLLM gets a venv of its own: installing it into .venv would change shared packages.
bench-gateway: install
	test -x .venv-bench/bin/litellm || ($(PYTHON) -m venv .venv-bench && .venv-bench/bin/pip install -q 'litellm[proxy]')
	$(BIN)/python benchmarks/gateway.py
