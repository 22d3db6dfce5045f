"""The model and dataset catalogues (suites/models.yaml, suites/datasets.yaml).

Differences between models and datasets live here, as data: a family, a source, an answer
rule, a metric. Code downstream reads these entries and never branches on a name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import UserError
from benchmark.paths import SUITES_DIR
from benchmark.registry.yamlio import check_keys, load_yaml, require

CAUSAL_FAMILIES = ("llama", "bloom", "gptj")  # decoder LMs: generation tasks, LLM-Adapters tokenizer settings
ENCODER_FAMILIES = ("bert", "roberta")  # encoders: classification / QA heads, the `adapters` methods
FAMILIES = CAUSAL_FAMILIES + ENCODER_FAMILIES
FORMATS = ("llm-adapters", "glue-jsonl", "dapt-jsonl", "squad-v1", "hf", "text")
SPLIT_FORMATS = ("glue-jsonl", "dapt-jsonl", "squad-v1", "hf")  # folders of splits: `split:` may name one
# corpus: unlabelled text (format text) for masked-LM stages (DAPT corpora, TAPT)
TASK_FAMILIES = ("math", "commonsense", "classification", "qa", "corpus")
ROLES = ("train", "dev", "eval")  # dev: the split early stopping and model selection read
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str  # "embedded:<name>", an HF id, or a local directory
    family: str
    dtype: str = "float32"
    resources: dict = field(default_factory=dict)  # cpus / gpus / memory_gb defaults for its trials
    embedded_twin: str | None = None  # the tiny model of the same family used by --embedded
    trust_remote_code: bool = False  # off unless the entry enables it explicitly
    description: str = ""
    arch: dict = field(default_factory=dict)  # HF config fields, for weightless parameter counts

    def __hash__(self):  # dict fields: hash by identity of the catalogue entry (name + source)
        return hash((self.name, self.source, self.dtype))

    @property
    def is_embedded(self) -> bool:
        return self.source.startswith("embedded:")


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    format: str  # which loader in benchmark/data reads it
    path: str  # relative to the data root (or the embedded data dir), or an HF id for format "hf"
    family: str  # math | commonsense | classification | qa | corpus
    role: str = "eval"  # train | dev | eval
    answer: str | None = None  # extraction rule: number | letter | choice (labels below)
    labels: tuple[str, ...] = ()  # for answer: choice, the label words (e.g. true, false)
    metric: str = "accuracy"
    max_new_tokens: int | None = None  # protocol default for generation
    embedded: bool = False  # lives under the embedded data dir, generated on first use
    embedded_twin: str | None = None  # the embedded dataset of the same format used by --embedded
    contains: tuple[str, ...] = ()  # eval datasets whose test items this training set holds (leak guard)
    source_note: str = ""  # where the real data comes from, printed when it is missing
    split: str | None = None  # the split to read instead of the role's (e.g. MNLI's validation_matched)


def _entry_error(file: Path, path: str, msg: str) -> UserError:
    return UserError(f"{file}: {path}: {msg}")


MODEL_KEYS = {"source", "family", "dtype", "resources", "embedded_twin", "trust_remote_code", "description", "arch"}
DATASET_KEYS = {"format", "path", "family", "role", "answer", "labels", "metric", "max_new_tokens",
                "embedded", "embedded_twin", "contains", "source_note", "split"}


def parse_models(raw: dict, file: Path) -> dict[str, ModelEntry]:
    models = require(raw, "models", dict, file, "")
    out = {}
    for name, body in models.items():
        where = f"models.{name}"
        check_keys(body, MODEL_KEYS, file, where)
        source = require(body, "source", str, file, where)
        family = require(body, "family", str, file, where)
        if family not in FAMILIES:
            raise _entry_error(file, f"{where}.family", f"got {family!r}; allowed: {', '.join(FAMILIES)}")
        dtype = body.get("dtype", "float32")
        if dtype not in DTYPES:
            raise _entry_error(file, f"{where}.dtype", f"got {dtype!r}; allowed: {', '.join(DTYPES)}")
        resources = body.get("resources", {}) or {}
        check_keys(resources, {"cpus", "gpus", "memory_gb"}, file, f"{where}.resources")
        trust = body.get("trust_remote_code", False)
        if not isinstance(trust, bool):
            raise _entry_error(file, f"{where}.trust_remote_code", f"got {trust!r}; allowed: true, false")
        out[name] = ModelEntry(name=name, source=source, family=family, dtype=dtype, resources=dict(resources),
                               embedded_twin=body.get("embedded_twin"), trust_remote_code=trust,
                               description=body.get("description", ""), arch=_arch(body, file, where, family))
    for entry in out.values():
        if entry.embedded_twin and entry.embedded_twin not in out:
            raise _entry_error(file, f"models.{entry.name}.embedded_twin",
                               f"unknown model {entry.embedded_twin!r}; allowed: {', '.join(sorted(out))}")
    return out


def _arch(body: dict, file: Path, where: str, family: str) -> dict:
    arch = body.get("arch", {}) or {}
    if not isinstance(arch, dict):
        raise _entry_error(file, f"{where}.arch", f"got {arch!r}; allowed: a mapping of HF config fields")
    if arch and arch.get("model_type") != family:
        raise _entry_error(file, f"{where}.arch.model_type", f"got {arch.get('model_type')!r}; allowed: {family!r} (the family)")
    return dict(arch)


def _data_path(path: str, file: Path, where: str) -> str:
    """Dataset paths stay inside the data root (or the embedded data dir): no absolute paths, no '..'."""
    if Path(path).is_absolute() or ".." in Path(path).parts or path.startswith("~"):
        raise _entry_error(file, f"{where}.path", f"got {path!r}; allowed: a path relative to the data root "
                           "(--data-dir / $PEFT_BENCH_DATA) without '..', or a Hugging Face dataset id")
    return path


def parse_datasets(raw: dict, file: Path) -> dict[str, DatasetEntry]:
    datasets = require(raw, "datasets", dict, file, "")
    out = {}
    for name, body in datasets.items():
        where = f"datasets.{name}"
        check_keys(body, DATASET_KEYS, file, where)
        fmt = require(body, "format", str, file, where)
        if fmt not in FORMATS:
            raise _entry_error(file, f"{where}.format", f"got {fmt!r}; allowed: {', '.join(FORMATS)}")
        family = require(body, "family", str, file, where)
        if family not in TASK_FAMILIES:
            raise _entry_error(file, f"{where}.family", f"got {family!r}; allowed: {', '.join(TASK_FAMILIES)}")
        if (fmt == "text") != (family == "corpus"):
            raise _entry_error(file, f"{where}.family", f"got {family!r} with format {fmt!r}; allowed: family corpus "
                               "exactly with format text (unlabelled documents)")
        split = body.get("split")
        if split is not None and (not isinstance(split, str) or not split.strip()):
            raise _entry_error(file, f"{where}.split", f"got {split!r}; allowed: a split name such as validation_matched")
        if split is not None and fmt not in SPLIT_FORMATS:
            raise _entry_error(file, f"{where}.split", f"format {fmt!r} has no splits; allowed with formats: "
                               f"{', '.join(SPLIT_FORMATS)}")
        role = body.get("role", "eval")
        if role not in ROLES:
            raise _entry_error(file, f"{where}.role", f"got {role!r}; allowed: {', '.join(ROLES)}")
        answer = body.get("answer")
        if answer not in (None, "number", "letter", "choice", "label", "span"):
            raise _entry_error(file, f"{where}.answer", f"got {answer!r}; allowed: number, letter, choice, label, span")
        raw_labels = body.get("labels") or []
        if not isinstance(raw_labels, list) or not all(isinstance(x, str) for x in raw_labels):
            raise _entry_error(file, f"{where}.labels", f"got {raw_labels!r}; allowed: a list of strings "
                               "(quote words YAML reads as booleans or numbers, e.g. \"true\")")
        labels = tuple(raw_labels)
        if answer == "choice" and not labels:
            raise _entry_error(file, f"{where}.labels", "answer: choice needs a non-empty list of label words")
        out[name] = DatasetEntry(
            name=name, format=fmt, path=_data_path(require(body, "path", str, file, where), file, where),
            family=family, role=role,
            answer=answer, labels=labels, metric=body.get("metric", "accuracy"),
            max_new_tokens=body.get("max_new_tokens"), embedded=bool(body.get("embedded", False)),
            embedded_twin=body.get("embedded_twin"), contains=tuple(body.get("contains", ()) or ()),
            source_note=body.get("source_note", ""), split=split,
        )
    for entry in out.values():
        for ref_field, refs in (("embedded_twin", [entry.embedded_twin] if entry.embedded_twin else []),
                                ("contains", list(entry.contains))):
            for ref in refs:
                if ref not in out:
                    raise _entry_error(file, f"datasets.{entry.name}.{ref_field}",
                                       f"unknown dataset {ref!r}; allowed: {', '.join(sorted(out))}")
    return out


@functools.cache
def _models_cached(file: str) -> dict[str, ModelEntry]:
    return parse_models(load_yaml(Path(file)), Path(file))


@functools.cache
def _datasets_cached(file: str) -> dict[str, DatasetEntry]:
    return parse_datasets(load_yaml(Path(file)), Path(file))


def models(file: Path | None = None) -> dict[str, ModelEntry]:
    return _models_cached(str(file or SUITES_DIR / "models.yaml"))


def datasets(file: Path | None = None) -> dict[str, DatasetEntry]:
    return _datasets_cached(str(file or SUITES_DIR / "datasets.yaml"))


def model(name: str) -> ModelEntry:
    from benchmark.errors import did_you_mean

    entries = models()
    if name not in entries:
        raise UserError(f"unknown model {name!r}{did_you_mean(name, entries)}; "
                        f"allowed: {', '.join(sorted(entries))} (suites/models.yaml)")
    return entries[name]


def dataset(name: str) -> DatasetEntry:
    from benchmark.errors import did_you_mean

    entries = datasets()
    if name not in entries:
        raise UserError(f"unknown dataset {name!r}{did_you_mean(name, entries)}; "
                        f"allowed: {', '.join(sorted(entries))} (suites/datasets.yaml)")
    return entries[name]
