"""What a trial produces. A leaf module: the runner fills it, the store writes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmark.registry.spec import TrialSpec


@dataclass
class Metric:
    eval_data: str  # dataset name
    task_family: str  # the dataset's: math | commonsense | classification | qa (stored as eval_family)
    metric: str  # accuracy, f1, em, mcc, spearman ...
    value: float  # in percent for accuracy-like metrics, as papers print them
    n_examples: int
    split: str = "test"  # test: the reported number; dev: the selection split (early stopping, lr search)


@dataclass
class Prediction:
    id: str
    prompt: str
    output: str  # the decoded text after "### Response:"
    extracted: str  # the answer the protocol extracted ("" or "inf" when none)
    gold: str
    correct: bool


@dataclass
class TrialResult:
    spec: TrialSpec
    status: str = "ok"  # ok | failed
    error: str | None = None  # message and traceback for failed trials
    metrics: list[Metric] = field(default_factory=list)
    predictions: dict[str, list[Prediction]] = field(default_factory=dict)  # eval_data -> rows
    trainable_params: int | None = None
    total_params: int | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    train_tokens_per_s: float | None = None
    eval_examples_per_s: float | None = None
    train_loss: float | None = None  # mean loss over the last logging window
    peak_memory_bytes: int | None = None  # the larger of the two phase peaks below (this trial's, sampled)
    # Sampled while the phase ran (device.MemorySampler): CUDA allocated bytes, or the process's resident set on CPU.
    train_tokens: int | None = None  # non-pad tokens fed to the model in training (every epoch counted)
    train_peak_memory_bytes: int | None = None
    train_p99_memory_bytes: int | None = None
    eval_peak_memory_bytes: int | None = None
    eval_p99_memory_bytes: int | None = None
    device: str | None = None
    decoding: dict[str, dict] = field(default_factory=dict)  # eval_data -> what decoding actually used
    started_at: str | None = None  # ISO 8601, UTC
    finished_at: str | None = None
    adapter_dir: str | None = None  # a local staging folder with what trained; the store publishes it (not stored)
    adapter_bytes: int | None = None  # that folder's size
    co_train_group: str | None = None  # the co-trained group it trained in (scheduler/groups.py); None: alone
    # Inference overhead (evaluation/overhead.py; trials evaluated by generation): greedy decode tokens/s on the same
    # prompts of the base model (before the method is injected), the adapted model (after evaluation) and, for a
    # method that merges into the base weights, the merged model. None: not measured (or the method cannot merge).
    base_decode_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    merged_decode_tokens_per_s: float | None = None
    # Forgetting (eval.forgetting; evaluation/forgetting.py): mean token loss on the held-out general-text corpus of
    # the base model and of the adapted model, same texts and batches. None: not measured.
    forgetting_base_loss: float | None = None
    forgetting_loss: float | None = None

    @property
    def trial_id(self) -> str:
        return self.spec.trial_id
