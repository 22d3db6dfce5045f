"""The Parquet schemas of the results store, and how suite / dataset names map to folders.

Evolution rule (docs/architecture.md, "Results store"): only add nullable columns, never change a type,
and bump SCHEMA_VERSION when a column is added. The reader scans every file with the newest
schema, so a file written by an older version simply shows nulls in the columns it lacks.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 6  # 2: `split` (dev | test; null in version-1 files means test); 3: `adapter_bytes`, `source`;
# 4: `co_train_group`; 5: `train_tokens`, `train_peak_memory_bytes`, `train_p99_memory_bytes`, `eval_peak_memory_bytes`,
# `eval_p99_memory_bytes`; 6: `base_decode_tokens_per_s`, `decode_tokens_per_s`, `merged_decode_tokens_per_s`,
# `forgetting_base_loss`, `forgetting_loss`

_TIMESTAMP = pa.timestamp("us", tz="UTC")

# Long format: one row per (trial, eval dataset, metric); the trial's metadata repeats on every
# row so any single row can be understood (and filtered) without a join.
TRIAL_SCHEMA = pa.schema([
    pa.field("schema_version", pa.int32(), nullable=False),
    pa.field("suite", pa.string(), nullable=False),
    pa.field("suite_version", pa.string()),
    pa.field("trial_id", pa.string(), nullable=False),
    pa.field("model", pa.string()),
    pa.field("model_source", pa.string()),
    pa.field("family", pa.string()),  # model family: llama | bloom | gptj | bert | roberta
    pa.field("method", pa.string()),
    pa.field("method_args", pa.string()),  # JSON
    pa.field("train_config", pa.string()),  # JSON of TrainConfig
    pa.field("train_data", pa.string()),
    pa.field("eval_data", pa.string()),  # null on the single row of a trial without metrics
    pa.field("eval_family", pa.string()),  # math | commonsense | classification | qa
    pa.field("protocol", pa.string()),
    pa.field("decoding", pa.string()),  # JSON: what decoding actually used for this eval dataset
    pa.field("metric", pa.string()),
    pa.field("split", pa.string()),  # test (reported) | dev (model selection: early stopping, lr search)
    pa.field("value", pa.float64()),
    pa.field("n_examples", pa.int64()),
    pa.field("trainable_params", pa.int64()),
    pa.field("total_params", pa.int64()),
    pa.field("trainable_pct", pa.float64()),
    pa.field("train_seconds", pa.float64()),
    pa.field("eval_seconds", pa.float64()),
    pa.field("train_tokens_per_s", pa.float64()),
    pa.field("eval_examples_per_s", pa.float64()),
    pa.field("train_loss", pa.float64()),
    pa.field("peak_memory_bytes", pa.int64()),
    pa.field("device", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("status", pa.string()),  # ok | failed
    pa.field("error", pa.string()),
    pa.field("git_sha", pa.string()),
    pa.field("git_dirty", pa.bool_()),
    pa.field("package_versions", pa.string()),  # JSON: distribution -> version
    pa.field("cell", pa.string()),  # JSON: the grid coordinates
    pa.field("spec", pa.string()),  # JSON of TrialSpec.to_dict(), enough to re-create the trial
    pa.field("started_at", _TIMESTAMP),
    pa.field("finished_at", _TIMESTAMP),
    pa.field("adapter_bytes", pa.int64()),  # the size of adapters/<trial_id>/ (what trained); null: none kept
    # null: the trial's own run; eval: `peft-bench eval` of its kept adapter; rescore: `peft-bench rescore` of its
    # stored outputs. Rows of eval and rescore live under evals/ (benchmark/store/evals.py), never under trials/.
    pa.field("source", pa.string()),
    # The co-trained group the trial trained in (train/cotrain.py: one shared base, its numbers as alone); null: alone.
    pa.field("co_train_group", pa.string()),
    # Sampled while training / evaluating (device.MemorySampler): CUDA allocated bytes or the process's resident set.
    pa.field("train_tokens", pa.int64()),  # non-pad tokens fed to the model in training
    pa.field("train_peak_memory_bytes", pa.int64()),
    pa.field("train_p99_memory_bytes", pa.int64()),
    pa.field("eval_peak_memory_bytes", pa.int64()),
    pa.field("eval_p99_memory_bytes", pa.int64()),
    # Inference overhead (trials evaluated by generation): greedy decode tokens/s on the same prompts of the base
    # model, the adapted one and the merged one (null: the method cannot merge its weights into the base).
    pa.field("base_decode_tokens_per_s", pa.float64()),
    pa.field("decode_tokens_per_s", pa.float64()),
    pa.field("merged_decode_tokens_per_s", pa.float64()),
    # Forgetting (eval.forgetting, the corpus named in the spec): mean token loss of the base and the adapted model.
    pa.field("forgetting_base_loss", pa.float64()),
    pa.field("forgetting_loss", pa.float64()),
], metadata={"peft_bench.schema_version": str(SCHEMA_VERSION)})

# Columns without which a Parquet file is not one of ours (the reader skips it with a warning).
REQUIRED_COLUMNS = ("suite", "trial_id", "status")

PREDICTION_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("prompt", pa.string()),
    pa.field("output", pa.string()),
    pa.field("extracted", pa.string()),
    pa.field("gold", pa.string()),
    pa.field("correct", pa.bool_()),
])


def safe_name(name: str, what: str = "suite") -> str:
    """A folder / file name for a suite or dataset name: "llm_adapters/math" -> "llm_adapters__math".

    Names that could escape the results root are refused rather than rewritten, so two different
    names can never silently land in the same folder.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what}: got {name!r}; allowed: a non-empty name")
    if ".." in name or name.startswith(("/", "\\")) or "\x00" in name:
        raise ValueError(f"{what}: got {name!r}; allowed: a relative name without '..' (e.g. llm_adapters/math)")
    return name.replace("/", "__").replace("\\", "__")


def unsafe_name(folder: str) -> str:
    """The inverse of safe_name, used only when no stored file names the suite itself."""
    return folder.replace("__", "/")
