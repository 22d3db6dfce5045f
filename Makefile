# peft-bench: every target installs what it needs into .venv first (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RESULTS ?= results
REPORTS ?= reports
EMBEDDED ?=
export RAY_USAGE_STATS_ENABLED ?= 0
export HF_HUB_DISABLE_TELEMETRY ?= 1

.PHONY: venv demo test test-all lint browser reproduce-llm-adapters reproduce-pt-unipelt report bench clean

venv: $(STAMP)

# torch first, by exact version: on a CPU-only machine that takes the local CPU wheel instead of
# pulling several GB of CUDA packages; a cluster image with a CUDA torch 2.13.0 keeps its own.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Headless Chromium for the report's browser test (Debian packages; needs root). Without it those tests skip.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "note: chromium not installed; browser tests will be skipped"; }

# The embedded default: generate the embedded tasks, run the smoke grid through local Ray, write the report.
demo: venv
	$(BIN)/peft-bench data embedded
	$(BIN)/peft-bench run smoke --results $(RESULTS)
	$(BIN)/peft-bench report smoke --results $(RESULTS) --out $(REPORTS)

test: venv browser
	$(BIN)/python -m pytest -q

test-all: venv browser
	$(BIN)/python -m pytest -q -m "not gpu"

lint: venv
	$(BIN)/ruff check benchmark tests

reproduce-llm-adapters: venv
	$(BIN)/peft-bench run llm_adapters/math $(if $(EMBEDDED),--embedded) --results $(RESULTS) || true
	$(BIN)/peft-bench run llm_adapters/commonsense $(if $(EMBEDDED),--embedded) --results $(RESULTS) || true
	$(BIN)/peft-bench report llm_adapters/math llm_adapters/commonsense $(if $(EMBEDDED),--embedded) --results $(RESULTS) --out $(REPORTS) --name llm_adapters$(if $(EMBEDDED),-embedded)

report: venv
	$(BIN)/peft-bench report smoke --results $(RESULTS) --out $(REPORTS)

clean:
	rm -rf $(RESULTS)/* $(REPORTS)/*
