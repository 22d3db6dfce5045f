"""The settings of one adaptive-pretraining stage (DAPT or TAPT), validated like every config.

A suite declares stages under `adapt:` as a list of mappings. The registry parses them once, when it
builds a TrialSpec (which holds the AdaptStages), so a typo fails at plan time and nothing downstream
parses them again. Defaults follow Gururangan et al. (ACL 2020): masked-LM with 15% masking, TAPT
100 epochs at lr 1e-4, DAPT 12,500 steps at lr 5e-4; the batch sizes there (256 and 2048 sequences)
are what a suite sets explicitly when it can afford them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from benchmark.checks import check, in_range
from benchmark.registry import bounds
from benchmark.registry.bounds import up_to

KINDS = ("dapt", "tapt")


@dataclass(frozen=True)
class AdaptStage:
    kind: str  # dapt: a domain corpus (a catalogue dataset of task family corpus); tapt: the task's own training text
    corpus: str | None = None  # dapt: the corpus dataset name; tapt: None (the trial's train_data)
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set (DAPT is specified in steps)
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.06
    mlm_probability: float = 0.15
    max_length: int = 128
    max_documents: int | None = None  # cap (rehearsal); None = the whole corpus
    seed: int = 0

    def __post_init__(self):
        check(self.kind in KINDS, "adapt.kind", self.kind, ", ".join(KINDS))
        if self.kind == "dapt":
            check(isinstance(self.corpus, str) and bool(self.corpus), "adapt.corpus", self.corpus,
                  "a dataset name (task family corpus) for kind dapt")
        else:
            check(self.corpus is None, "adapt.corpus", self.corpus, "null for kind tapt (it reads the task's train_data)")
        check(in_range(self.epochs, 0, bounds.EPOCHS) and self.epochs > 0, "adapt.epochs", self.epochs,
              f"a number in (0, {bounds.EPOCHS}]")
        check(self.max_steps is None or in_range(self.max_steps, 1, bounds.STEPS, integer=True), "adapt.max_steps",
              self.max_steps, "null or " + up_to(bounds.STEPS))
        check(in_range(self.batch_size, 1, bounds.BATCH, integer=True), "adapt.batch_size", self.batch_size,
              up_to(bounds.BATCH))
        check(in_range(self.learning_rate, 0, 1) and 0 < self.learning_rate < 1, "adapt.learning_rate",
              self.learning_rate, "a number in (0, 1)")
        check(in_range(self.warmup_ratio, 0, 1) and self.warmup_ratio < 1, "adapt.warmup_ratio", self.warmup_ratio,
              "a number in [0, 1)")
        check(in_range(self.mlm_probability, 0, 1) and 0 < self.mlm_probability < 1, "adapt.mlm_probability",
              self.mlm_probability, "a number in (0, 1)")
        check(in_range(self.max_length, 8, bounds.TOKENS, integer=True), "adapt.max_length", self.max_length,
              up_to(bounds.TOKENS, 8))
        check(self.max_documents is None or in_range(self.max_documents, 1, bounds.EXAMPLES, integer=True),
              "adapt.max_documents", self.max_documents, "null or " + up_to(bounds.EXAMPLES))
        check(in_range(self.seed, 0, bounds.SEED, integer=True), "adapt.seed", self.seed, up_to(bounds.SEED, 0))

    def to_dict(self) -> dict:
        return asdict(self)


def parse_stages(raw, where: str = "adapt") -> tuple[AdaptStage, ...]:
    """A suite's (or a stored spec's) `adapt` value -> stages; ValueError naming the field for anything else."""
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{where}: got {raw!r}; allowed: a list of stages such as [{{kind: tapt}}]")
    stages = []
    allowed = {f.name for f in fields(AdaptStage)}
    for i, body in enumerate(raw):
        if not isinstance(body, dict):
            raise ValueError(f"{where}[{i}]: got {body!r}; allowed: a mapping with kind: dapt | tapt")
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ValueError(f"{where}[{i}].{unknown[0]}: unknown key; allowed: {', '.join(sorted(allowed))}")
        if "kind" not in body:
            raise ValueError(f"{where}[{i}].kind: missing; allowed: {', '.join(KINDS)}")
        try:
            stages.append(AdaptStage(**body))
        except ValueError as exc:
            raise ValueError(f"{where}[{i}].{str(exc).removeprefix('adapt.')}") from None
    return tuple(stages)
