# imagefleet: `make demo` and `make test` each set up everything on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test test-slow lint bench packer prometheus browser clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if command -v apt-get >/dev/null; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "error: cannot create a virtualenv; install Python >= 3.11 with venv" >&2; exit 1; fi; }
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,local,lint]'
	@touch $(STAMP)

# Packer (>= 1.6 with the amazon-ebs builder): Debian's package when apt is there.
packer:
	@command -v packer >/dev/null || { \
	  if command -v apt-get >/dev/null; then \
	    echo "installing packer with apt-get"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq packer; \
	  else \
	    echo "error: packer is not installed and apt-get is not available." >&2; \
	    echo "Install Packer >= 1.6 (amazon-ebs builder) from https://developer.hashicorp.com/packer/install" >&2; \
	    exit 1; \
	  fi; }
	@packer version | head -1

# Debian's Prometheus server, for `local up --prometheus`, the demo's PromQL canary and its test.
prometheus:
	@command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || { \
	  if command -v apt-get >/dev/null; then \
	    echo "installing prometheus with apt-get"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else \
	    echo "warning: prometheus is not installed; the demo judges its canary from CloudWatch" >&2; \
	  fi; }

# Debian's Chromium, for the report site's browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null || { \
	  if command -v apt-get >/dev/null; then \
	    echo "installing chromium with apt-get"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "warning: chromium is not installed; the report's browser tests will be skipped" >&2; \
	  fi; }

# The Quick start's first step: .venv with imagefleet, Packer and Prometheus; then `. .venv/bin/activate`.
install: $(STAMP) packer prometheus
	@echo "installed; put imagefleet on the PATH with:  . .venv/bin/activate"

demo: $(STAMP) packer prometheus
	$(BIN)/python -m tools.demo

# Two workers, each with its own embedded endpoint: the endpoint is the bottleneck, one per core.
# worksteal: each worker starts on its own half of the suite in file order (so a test module's
# endpoint reset and module fixtures happen once, on one worker) and the one that finishes first
# takes over the other's remaining tests, so neither sits idle at the end.
test: $(STAMP) packer prometheus browser
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist worksteal -m "not slow"

# ruff (lint and format) and mypy --strict over the product packages, the benches and tools (settings in
# pyproject.toml); ruff over the tests too.
lint: $(STAMP)
	$(BIN)/ruff check bench canary changelog imagefleet orchestrator perf pipelines tests tools
	$(BIN)/ruff format --check bench canary changelog imagefleet orchestrator perf pipelines tests tools
	$(BIN)/mypy bench canary changelog imagefleet orchestrator perf pipelines tools

# The long ones: end-to-end runs under injected AWS faults, the kill soak, statistical acceptance.
test-slow: $(STAMP) packer prometheus
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist worksteal -m slow

bench: $(STAMP)
	$(BIN)/python -m bench.record

clean:
	rm -rf $(VENV) demo-output .imagefleet test-artifacts
