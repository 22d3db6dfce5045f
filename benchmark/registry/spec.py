"""The resolved, frozen description of one trial, and its stable id.

Everything downstream of the registry (runner, scheduler, store, report) receives a TrialSpec
and never re-reads YAML. The trial_id is a hash of the canonical JSON of every field that can
change a result, so the same cell always gets the same id and any change gives a new one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field

from benchmark.checks import check, in_range
from benchmark.registry import bounds
from benchmark.registry.bounds import up_to
from benchmark.registry.quirks import PROTOCOLS, is_on, parse_switches
from benchmark.registry.stages import AdaptStage, parse_stages

# Bump when the meaning of a field changes, so old ids are not reused for new semantics.
SPEC_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (LLM-Adapters finetune.py names and defaults)."""

    epochs: float = 3
    batch_size: int = 128  # global batch; gradient accumulation = batch_size // micro_batch_size
    micro_batch_size: int = 4
    learning_rate: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    # Gradient clipping to this global norm before each optimizer step: transformers.TrainingArguments'
    # default (1.0), which finetune.py leaves as is. null: no clipping.
    max_grad_norm: float | None = 1.0
    cutoff_len: int = 256
    train_on_inputs: bool = True
    group_by_length: bool = True  # peft-bench default; the reference used False (only used when not packing)
    # Packed micro-batches (train/packing.py): where the model supports it and a probe at the start of
    # training gets the same losses as padding; else padded. The reference padded every micro-batch.
    packing: bool = True
    val_set_size: int = 0
    max_train_examples: int | None = None  # cap (rehearsal); None = all
    max_steps: int | None = None  # stop after this many optimizer steps; None = epochs decide
    gradient_checkpointing: bool = False  # the authors' LLaMA-13B runs used it (memory, not results)
    seed: int = 42
    # Encoder tasks: evaluate the dev split after every epoch, stop after this many epochs without a
    # better dev score and restore the best weights (UniPELT / PT+UniPELT: 10). None = no early stopping.
    early_stopping_patience: int | None = None
    doc_stride: int = 128  # extractive QA: overlap between the windows of a long context (SQuAD scripts: 128)
    max_seconds: float | None = None  # time budget of the training phase; exceeding it fails the trial (recorded)

    def __post_init__(self):
        check(in_range(self.epochs, 0, bounds.EPOCHS) and self.epochs > 0, "train.epochs", self.epochs,
              f"a number in (0, {bounds.EPOCHS}]")
        check(in_range(self.batch_size, 1, bounds.BATCH, integer=True), "train.batch_size", self.batch_size,
              up_to(bounds.BATCH))
        check(in_range(self.micro_batch_size, 1, self.batch_size, integer=True), "train.micro_batch_size",
              self.micro_batch_size, f"an integer in 1..batch_size ({self.batch_size})")
        check(self.batch_size % self.micro_batch_size == 0, "train.batch_size", self.batch_size,
              f"a multiple of micro_batch_size ({self.micro_batch_size})")
        check(in_range(self.learning_rate, 0, 10) and 0 < self.learning_rate < 10, "train.learning_rate",
              self.learning_rate, "a number in (0, 10)")
        check(in_range(self.warmup_steps, 0, bounds.STEPS, integer=True), "train.warmup_steps", self.warmup_steps,
              up_to(bounds.STEPS, 0))
        check(in_range(self.weight_decay, 0, bounds.WEIGHT_DECAY), "train.weight_decay", self.weight_decay,
              f"a number in [0, {bounds.WEIGHT_DECAY}]")
        check(self.max_grad_norm is None or (in_range(self.max_grad_norm, 0, bounds.GRAD_NORM) and self.max_grad_norm > 0),
              "train.max_grad_norm", self.max_grad_norm, f"null or a number in (0, {bounds.GRAD_NORM}]")
        check(in_range(self.cutoff_len, 8, bounds.TOKENS, integer=True), "train.cutoff_len", self.cutoff_len,
              up_to(bounds.TOKENS, 8))
        check(isinstance(self.train_on_inputs, bool), "train.train_on_inputs", self.train_on_inputs, "true or false")
        check(isinstance(self.group_by_length, bool), "train.group_by_length", self.group_by_length, "true or false")
        check(isinstance(self.packing, bool), "train.packing", self.packing, "true or false")
        check(in_range(self.val_set_size, 0, bounds.EXAMPLES, integer=True), "train.val_set_size", self.val_set_size,
              up_to(bounds.EXAMPLES, 0))
        check(self.max_train_examples is None or in_range(self.max_train_examples, 1, bounds.EXAMPLES, integer=True),
              "train.max_train_examples", self.max_train_examples, "null or " + up_to(bounds.EXAMPLES))
        check(self.max_steps is None or in_range(self.max_steps, 1, bounds.STEPS, integer=True),
              "train.max_steps", self.max_steps, "null or " + up_to(bounds.STEPS))
        check(isinstance(self.gradient_checkpointing, bool), "train.gradient_checkpointing", self.gradient_checkpointing,
              "true or false")
        check(in_range(self.seed, 0, bounds.SEED, integer=True), "train.seed", self.seed, up_to(bounds.SEED, 0))
        check(self.early_stopping_patience is None or in_range(self.early_stopping_patience, 1, bounds.EPOCHS, integer=True),
              "train.early_stopping_patience", self.early_stopping_patience, "null or " + up_to(bounds.EPOCHS))
        check(self.max_seconds is None or (in_range(self.max_seconds, 0, bounds.SECONDS) and self.max_seconds > 0),
              "train.max_seconds", self.max_seconds, f"null or a number of seconds in (0, {bounds.SECONDS}] (30 days)")
        # (that it leaves room for the question inside cutoff_len is checked where QA windows are made)
        check(in_range(self.doc_stride, 1, bounds.TOKENS, integer=True), "train.doc_stride", self.doc_stride,
              up_to(bounds.TOKENS))

    @property
    def grad_accum_steps(self) -> int:
        return self.batch_size // self.micro_batch_size


# The protocols and their quirks: registry/quirks.py (re-exported: callers import PROTOCOLS from here).


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings. max_new_tokens None = the dataset's protocol default (256 math, 32 commonsense)."""

    protocol: str = "llm-adapters"
    num_beams: int = 4
    max_new_tokens: int | None = None
    batch_size: int = 16
    max_eval_examples: int | None = None  # cap (rehearsal); None = the whole test set
    max_answer_length: int = 30  # extractive QA: longest span in tokens (the SQuAD scripts' default)
    # Quirks switched against the protocol's defaults ({name: on|off}; registry/quirks.py). Part of the trial id.
    quirks: dict = field(default_factory=dict)
    # A general-text corpus (a catalogue dataset of task_family corpus) on which the base model's and the adapted
    # model's language-model loss are measured (forgetting); None: not measured. Causal LMs only.
    forgetting: str | None = None

    def __post_init__(self):
        check(self.protocol in PROTOCOLS, "eval.protocol", self.protocol, ", ".join(PROTOCOLS))
        object.__setattr__(self, "quirks", parse_switches(self.quirks))  # {name: bool}, names checked
        check(self.forgetting is None or (isinstance(self.forgetting, str) and self.forgetting.strip() != ""),
              "eval.forgetting", self.forgetting, "null or the name of a corpus dataset")
        check(in_range(self.num_beams, 1, bounds.BEAMS, integer=True), "eval.num_beams", self.num_beams,
              up_to(bounds.BEAMS))
        check(self.max_new_tokens is None or in_range(self.max_new_tokens, 1, bounds.TOKENS, integer=True),
              "eval.max_new_tokens", self.max_new_tokens, "null or " + up_to(bounds.TOKENS))
        check(in_range(self.batch_size, 1, bounds.BATCH, integer=True), "eval.batch_size", self.batch_size,
              up_to(bounds.BATCH))
        check(self.max_eval_examples is None or in_range(self.max_eval_examples, 1, bounds.EXAMPLES, integer=True),
              "eval.max_eval_examples", self.max_eval_examples, "null or " + up_to(bounds.EXAMPLES))
        check(in_range(self.max_answer_length, 1, bounds.TOKENS, integer=True), "eval.max_answer_length",
              self.max_answer_length, up_to(bounds.TOKENS))

    def __hash__(self) -> int:  # hashable like the other sections, though `quirks` is a dict
        return hash(tuple((f.name, tuple(sorted(self.quirks.items())) if f.name == "quirks" else getattr(self, f.name))
                          for f in dataclasses.fields(self)))

    def quirk_on(self, name: str) -> bool:
        """Whether the named quirk acts in this trial: its switch, else its protocol's default."""
        return is_on(self.protocol, self.quirks, name)


@dataclass(frozen=True)
class Resources:
    """What one trial asks the scheduler for (scheduling only; Ray does not enforce GPU memory)."""

    cpus: float = 1
    gpus: float = 0
    memory_gb: float | None = None

    def __post_init__(self):
        check(in_range(self.cpus, 0, bounds.CPUS) and self.cpus > 0, "resources.cpus", self.cpus,
              f"a number in (0, {bounds.CPUS}]")
        check(in_range(self.gpus, 0, bounds.GPUS), "resources.gpus", self.gpus, f"a number in [0, {bounds.GPUS}]")
        check(self.memory_gb is None or (in_range(self.memory_gb, 0, bounds.MEMORY_GB) and self.memory_gb > 0),
              "resources.memory_gb", self.memory_gb, f"null or a number in (0, {bounds.MEMORY_GB}]")


@dataclass(frozen=True)
class TrialSpec:
    """One cell of a grid, fully resolved. Frozen: build a new one instead of mutating."""

    suite: str
    suite_version: str
    model: str  # catalogue alias, e.g. "tiny-llama", "llama-7b"
    model_source: str  # resolved: "embedded:tiny-llama", an HF id or a local path
    model_family: str  # llama | bloom | gptj | bert | roberta (identity key "family", as first stored)
    method: str  # registered method name, e.g. "lora"
    method_args: dict = field(default_factory=dict)  # validated by the method's Config
    train_data: str = ""  # dataset name from the catalogue
    eval_data: tuple[str, ...] = ()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    resources: Resources = Resources()
    dtype: str = "float32"  # float32 | bfloat16 | float16
    trust_remote_code: bool = False
    cell: dict = field(default_factory=dict)  # the grid coordinates that produced this trial (for display)
    dev_data: str | None = None  # the selection split (early stopping, lr search); None = held out from train
    adapt: tuple[AdaptStage, ...] = ()  # masked-LM stages before fine-tuning (DAPT / TAPT), benchmark/adapt/
    # The user catalogue entries the trial uses ("models.NAME" / "datasets.NAME" / "tables.ID" -> {file, entry as
    # written}; registry/catalogues.py): part of the id (the entries, not where their files lie; tables are display
    # only), and what a worker rebuilds them from. Empty for a trial of shipped entries only.
    catalogue: dict = field(default_factory=dict)

    def identity(self) -> dict:
        """Everything that can change the result; resources and display-only fields excluded.

        Fields added after SPEC_VERSION 1 are left out while they hold their default, so every trial
        stored before they existed keeps its id (a rerun still finds it)."""
        data = _stored_names(dataclasses.asdict(self))
        for display_only in ("resources", "cell", "suite_version"):
            data.pop(display_only)
        data["catalogue"] = {key: item["entry"] for key, item in data["catalogue"].items() if not key.startswith("tables.")}
        for section, defaults in _ADDED_LATER.items():
            target = data if section is None else data[section]
            for name, default in defaults.items():
                if target.get(name) == default:
                    target.pop(name)
        data["spec_version"] = SPEC_VERSION
        return data

    @functools.cached_property  # frozen: computed once (the store hashes every row's spec)
    def trial_id(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["eval_data"] = list(self.eval_data)
        data["adapt"] = [stage.to_dict() for stage in self.adapt]
        data["trial_id"] = self.trial_id
        return data

    @property
    def trains_on_inputs(self) -> bool:
        """train_on_inputs as the trial trains: the quirk's switch when the suite sets one, else train.train_on_inputs
        under a protocol that has the quirk, else off (strict masks the prompt)."""
        if "train_on_inputs" in self.eval.quirks:
            return self.eval.quirks["train_on_inputs"]
        return self.train.train_on_inputs and self.eval.quirk_on("train_on_inputs")

    @property
    def catalogue_files(self) -> list[str]:
        """The user catalogue files that contributed entries to this trial."""
        return sorted({item["file"] for item in self.catalogue.values()})

    @classmethod
    def from_dict(cls, data: dict) -> TrialSpec:
        data = dict(data)
        data.pop("trial_id", None)
        if "family" in data:  # specs stored before the rename
            data["model_family"] = data.pop("family")
        data["train"] = TrainConfig(**data.get("train", {}))
        data["eval"] = EvalConfig(**data.get("eval", {}))
        data["resources"] = Resources(**data.get("resources", {}))
        data["eval_data"] = tuple(data.get("eval_data", ()))
        data["adapt"] = parse_stages(list(data.get("adapt", ()) or ()))
        return cls(**data)


def _stored_names(data: dict) -> dict:
    """Fields renamed since SPEC_VERSION 1 hash under their first name, so every stored trial keeps its id."""
    data["family"] = data.pop("model_family")
    return data


# Fields added after SPEC_VERSION 1 and their defaults (None = a TrialSpec field, else its section).
_ADDED_LATER = {
    None: {"dev_data": None, "adapt": (), "catalogue": {}},
    "train": {"early_stopping_patience": None, "doc_stride": 128, "max_seconds": None},
    "eval": {"max_answer_length": 30, "quirks": {}, "forgetting": None},
}
