"""The model and dataset catalogues (suites/models.yaml, suites/datasets.yaml).

Differences between models and datasets live here, as data: a family, a source, an answer
rule, a metric. Code downstream reads these entries and never branches on a name.

A dataset is one entry: its format (validated against benchmark/registry/formats), location, task
family, answer rule and options (its chance level follows), metrics (validated against the metric
table, benchmark/metrics.py), generation length, the report table and column it is printed in (the
`tables:` section gives each table its title), the column name published tables use, and its embedded
twin. This module parses one file's entries; benchmark/registry/catalogues.py combines the shipped files
with the user's own (--catalogue, $PEFT_BENCH_CATALOGUE, a suite's own sections) into a Catalogue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from benchmark import metrics as metric_table
from benchmark.checks import in_range
from benchmark.errors import UserError, did_you_mean
from benchmark.registry import bounds, formats
from benchmark.registry.spec import Resources
from benchmark.registry.yamlio import check_keys, require

CAUSAL_FAMILIES = ("llama", "bloom", "gptj")  # decoder LMs: generation tasks, LLM-Adapters tokenizer settings
ENCODER_FAMILIES = ("bert", "roberta")  # encoders: classification / QA heads, the `adapters` methods
FAMILIES = CAUSAL_FAMILIES + ENCODER_FAMILIES
# corpus: unlabelled text (format text) for masked-LM stages (DAPT corpora, TAPT)
TASK_FAMILIES = ("math", "commonsense", "classification", "qa", "corpus")
ROLES = ("train", "dev", "eval")  # dev: the split early stopping and model selection read
ANSWERS = ("number", "letter", "choice")  # answer extraction rules of generation tasks (evaluation/extract.py)
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str  # "embedded:<name>", an HF id, a local directory, a .gguf file, or python:<package>/<path>
    model_family: str  # llama | bloom | gptj | bert | roberta (the `family` key; `auto` resolved at parse time)
    dtype: str = "float32"
    resources: dict = field(default_factory=dict)  # cpus / gpus / memory_gb defaults for its trials
    embedded_twin: str | None = None  # the tiny model of the same family used by --embedded
    trust_remote_code: bool = False  # off unless the entry enables it explicitly
    description: str = ""
    arch: dict = field(default_factory=dict)  # HF config fields, for weightless parameter counts
    file: str = field(default="", compare=False)  # the catalogue file that declares it (for messages)
    model_type: str = ""  # family auto: the checkpoint's (or arch's) model_type, e.g. mistral; "" otherwise
    source_note: str = ""  # how to install what the source needs, printed when it is missing

    def __hash__(self):  # dict fields: hash by identity of the catalogue entry (name + source)
        return hash((self.name, self.source, self.dtype))

    @property
    def is_embedded(self) -> bool:
        return self.source.startswith("embedded:")


@dataclass(frozen=True)
class DatasetTable:
    """A report table datasets belong to (a page per suite): its id and the title pages print."""

    id: str
    title: str


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    format: str  # a registered format (benchmark/registry/formats): how the files are read
    path: str  # relative to the data root (or the embedded data dir), or an HF id for format "hf"
    task_family: str  # math | commonsense | classification | qa | corpus: which task kind trains and scores it
    role: str = "eval"  # train | dev | eval
    answer: str | None = None  # extraction rule of generation tasks: number | letter | choice
    # choice: the label words (true, false); letter: the option letters (A-E); classification: the class names
    labels: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("accuracy",)  # names in benchmark.metrics, in print order; the first is selected on
    max_new_tokens: int | None = None  # generation length of the protocol
    embedded: bool = False  # lives under the embedded data dir, generated on first use
    embedded_twin: str | None = None  # the embedded dataset of the same format used by --embedded
    contains: tuple[str, ...] = ()  # eval datasets whose test items this training set holds (leak guard)
    source_note: str = ""  # where the real data comes from, printed when it is missing
    split: str | None = None  # the split to read instead of the role's (e.g. MNLI's validation_matched)
    table: str | None = None  # the report table (tables: in the catalogue) of an eval set; default its task family
    column: int | None = None  # its position among the table's columns (1 = first); unset: after the numbered ones
    published_as: str = ""  # the column name published tables (suites/baselines) use; default the name
    file: str = field(default="", compare=False)  # the catalogue file that declares it (for messages)

    @property
    def metric(self) -> str:
        """The metric reported first and used for dev selection."""
        return self.metrics[0]

    @property
    def published_name(self) -> str:
        return self.published_as or self.name

    @property
    def chance(self) -> float | None:
        """Accuracy (%) of a uniform guess among the answer options: 1/k for choice and letter answers, 0 for
        an open number; None where the catalogue does not define one (another metric, or no answer rule)."""
        if self.metric != "accuracy":
            return None
        if self.answer in ("choice", "letter"):
            return 100.0 / len(self.labels)
        return 0.0 if self.answer == "number" else None


def _entry_error(file: Path, path: str, msg: str) -> UserError:
    return UserError(f"{file}: {path}: {msg}")


# replaces: true lets an entry of a later file take the name of an earlier one (catalogues.py checks it)
MODEL_KEYS = {"source", "family", "dtype", "resources", "embedded_twin", "trust_remote_code", "description", "arch",
              "source_note", "replaces"}
AUTO_FAMILY = "auto"  # family: auto -> the family of the checkpoint's architecture (registry/checkpoint.py)
DATASET_KEYS = {"format", "path", "task_family", "family", "role", "answer", "labels", "metric", "metrics",
                "max_new_tokens", "embedded", "embedded_twin", "contains", "source_note", "split", "table", "column",
                "published_as", "replaces"}


def parse_models(raw: dict, file: Path, known: dict[str, ModelEntry] | None = None) -> dict[str, ModelEntry]:
    """One catalogue file's models, validated. known: the models of the files read before this one (an
    embedded_twin may name one of them)."""
    models = require(raw, "models", dict, file, "")
    known = known or {}
    out = {}
    for name, body in models.items():
        where = f"models.{name}"
        check_keys(body, MODEL_KEYS, file, where)
        source = require(body, "source", str, file, where)
        model_family = require(body, "family", str, file, where)
        if model_family not in (*FAMILIES, AUTO_FAMILY):
            raise _entry_error(file, f"{where}.family", f"got {model_family!r}; allowed: {', '.join(FAMILIES)}, "
                               f"{AUTO_FAMILY} (a LLaMA-layout decoder, read from the checkpoint's config)")
        dtype = body.get("dtype", "float32")
        if dtype not in DTYPES:
            raise _entry_error(file, f"{where}.dtype", f"got {dtype!r}; allowed: {', '.join(DTYPES)}")
        resources = body.get("resources", {}) or {}
        check_keys(resources, {"cpus", "gpus", "memory_gb"}, file, f"{where}.resources")
        try:  # its trials' defaults: a bad value fails with the file that holds it, not in a suite that inherits it
            Resources(**resources)
        except ValueError as exc:
            raise UserError(f"{file}: {where}.{exc}") from None
        trust = body.get("trust_remote_code", False)
        if not isinstance(trust, bool):
            raise _entry_error(file, f"{where}.trust_remote_code", f"got {trust!r}; allowed: true, false")
        source_note = body.get("source_note", "")
        if not isinstance(source_note, str):
            raise _entry_error(file, f"{where}.source_note", f"got {source_note!r}; allowed: a line of text")
        arch = _arch(body, file, where, model_family)
        model_type = ""
        if model_family == AUTO_FAMILY:
            model_family, model_type = _auto_family(source, trust, arch, source_note, file, where)
        out[name] = ModelEntry(name=name, source=source, model_family=model_family, dtype=dtype,
                               resources=dict(resources), embedded_twin=body.get("embedded_twin"),
                               trust_remote_code=trust, description=body.get("description", ""),
                               arch=arch, file=str(file), model_type=model_type, source_note=source_note)
    everything = {**known, **out}
    for entry in out.values():
        if entry.embedded_twin and entry.embedded_twin not in everything:
            raise _entry_error(file, f"models.{entry.name}.embedded_twin",
                               f"unknown model {entry.embedded_twin!r}; allowed: {', '.join(sorted(everything))}")
    return out


def _arch(body: dict, file: Path, where: str, model_family: str) -> dict:
    """The entry's published architecture. Under family auto its model_type is any architecture (mistral, qwen2,
    ...) whose layout decides the family; otherwise it is the family itself."""
    arch = body.get("arch", {}) or {}
    if not isinstance(arch, dict):
        raise _entry_error(file, f"{where}.arch", f"got {arch!r}; allowed: a mapping of HF config fields")
    if arch and model_family == AUTO_FAMILY and not isinstance(arch.get("model_type"), str):
        raise _entry_error(file, f"{where}.arch.model_type", f"got {arch.get('model_type')!r}; allowed: the "
                           "architecture's HF model_type (e.g. mistral, qwen2)")
    if arch and model_family != AUTO_FAMILY and arch.get("model_type") != model_family:
        raise _entry_error(file, f"{where}.arch.model_type",
                           f"got {arch.get('model_type')!r}; allowed: {model_family!r} (the family)")
    return dict(arch)


def _auto_family(source: str, trust: bool, arch: dict, note: str, file: Path, where: str) -> tuple[str, str]:
    """(family, model_type) of a `family: auto` entry: from its arch block, else its checkpoint's config (read
    once per source and process; a grid's trial ids need the family before anything runs)."""
    from benchmark.registry import checkpoint

    try:
        return checkpoint.auto_family(source, trust, json.dumps(arch, sort_keys=True), FAMILIES, note)
    except UserError as exc:
        raise _entry_error(file, f"{where}.family", f"auto: {exc}") from None


def _data_path(path: str, file: Path, where: str, anywhere: bool) -> str:
    """Shipped dataset paths stay inside the data root (or the embedded data dir): no absolute paths, no '..'.
    anywhere: a user catalogue's path, already made absolute against its file's folder (catalogues.py)."""
    if anywhere:
        return path
    if Path(path).is_absolute() or ".." in Path(path).parts or path.startswith("~"):
        raise _entry_error(file, f"{where}.path", f"got {path!r}; allowed: a path relative to the data root "
                           "(--data-dir / $PEFT_BENCH_DATA) without '..', or a Hugging Face dataset id")
    return path


def parse_tables(raw: dict, file: Path) -> dict[str, DatasetTable]:
    """The catalogue's `tables:` section: id -> {title}."""
    body = raw.get("tables", {}) or {}
    if not isinstance(body, dict):
        raise _entry_error(file, "tables", f"got {body!r}; allowed: a mapping of table id -> {{title}}")
    out = {}
    for table_id, table in body.items():
        where = f"tables.{table_id}"
        check_keys(table, {"title", "replaces"}, file, where)
        title = require(table, "title", str, file, where)
        if not title.strip():
            raise _entry_error(file, f"{where}.title", "got ''; allowed: the title the report prints")
        out[str(table_id)] = DatasetTable(id=str(table_id), title=title)
    return out


def _choice(value, allowed, file: Path, path: str):
    if value not in allowed:
        raise _entry_error(file, path, f"got {value!r}{did_you_mean(str(value), allowed)}; "
                           f"allowed: {', '.join(map(str, allowed))}")
    return value


def _strings(body: dict, key: str, file: Path, where: str, hint: str = "") -> tuple[str, ...]:
    value = body.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value) \
            or len(set(value)) != len(value):
        raise _entry_error(file, f"{where}.{key}", f"got {value!r}; allowed: a list of distinct non-empty strings{hint}")
    return tuple(value)


def _positive_int(body: dict, key: str, file: Path, where: str, limit: int) -> int | None:
    value = body.get(key)
    if value is not None and not in_range(value, 1, limit, integer=True):
        raise _entry_error(file, f"{where}.{key}", f"got {value!r}; allowed: {bounds.up_to(limit)}")
    return value


def _task_family(body: dict, file: Path, where: str) -> str:
    # `family` is the key catalogues used before the rename; one of the two, never both.
    if "family" in body and "task_family" in body:
        raise _entry_error(file, f"{where}.family", "given with task_family; allowed: task_family only")
    key = "family" if "family" in body else "task_family"
    return _choice(require(body, key, str, file, where), TASK_FAMILIES, file, f"{where}.{key}")


def _dataset(name: str, body, file: Path, tables: dict[str, DatasetTable], anywhere: bool = False) -> DatasetEntry:
    where = f"datasets.{name}"
    check_keys(body, DATASET_KEYS, file, where)
    fmt = formats.get(_choice(require(body, "format", str, file, where), formats.names(), file, f"{where}.format"))
    task_family = _task_family(body, file, where)
    if task_family not in fmt.task_families:
        raise _entry_error(file, f"{where}.task_family", f"got {task_family!r} with format {fmt.name!r}; "
                           f"allowed: {', '.join(fmt.task_families)}")
    split = body.get("split")
    if split is not None:
        if fmt.splits == ():
            raise _entry_error(file, f"{where}.split", f"format {fmt.name!r} has no splits; allowed with formats: "
                               f"{', '.join(n for n in formats.names() if formats.get(n).splits != ())}")
        if not isinstance(split, str) or not split.strip() or (fmt.splits is not None and split not in fmt.splits):
            raise _entry_error(file, f"{where}.split", f"got {split!r}; allowed: "
                               + (", ".join(fmt.splits) if fmt.splits else "a split name such as validation_matched"))
    role = _choice(body.get("role", "eval"), ROLES, file, f"{where}.role")
    answer = body.get("answer")
    if answer is not None:
        _choice(answer, ANSWERS, file, f"{where}.answer")
    labels = _strings(body, "labels", file, where, " (quote words YAML reads as booleans or numbers, e.g. \"true\")")
    if answer in ("choice", "letter") and not labels:
        raise _entry_error(file, f"{where}.labels", f"answer: {answer} needs its answer options "
                           "(choice: the label words; letter: the option letters, e.g. [A, B, C, D, E])")
    if answer == "letter" and not all(len(x) == 1 for x in labels):
        raise _entry_error(file, f"{where}.labels", f"got {list(labels)!r}; allowed: single letters (answer: letter)")
    metric_key = "metric" if "metric" in body else "metrics"
    if "metric" in body and "metrics" in body:
        raise _entry_error(file, f"{where}.metric", "given with metrics; allowed: one of metric, metrics")
    metrics = _strings(body, metric_key, file, where) or ("accuracy",)
    for i, metric in enumerate(metrics):
        _choice(metric, metric_table.names(), file, f"{where}.{metric_key}" + (f"[{i}]" if metric_key == "metrics" else ""))
    table = body.get("table", task_family if role == "eval" else None)
    if "table" in body:
        if role != "eval":
            raise _entry_error(file, f"{where}.table", f"role {role!r}; allowed: a table for eval datasets only")
        _choice(table, sorted(tables), file, f"{where}.table")
    column = _positive_int(body, "column", file, where, bounds.COLUMN)
    if column is not None and "table" not in body:
        raise _entry_error(file, f"{where}.column", "given without table; allowed: a position in the entry's table")
    published_as = body.get("published_as", "")
    if not isinstance(published_as, str):
        raise _entry_error(file, f"{where}.published_as", f"got {published_as!r}; allowed: a column name")
    embedded = body.get("embedded", False)
    if not isinstance(embedded, bool):
        raise _entry_error(file, f"{where}.embedded", f"got {embedded!r}; allowed: true, false")
    return DatasetEntry(
        name=name, format=fmt.name, path=_data_path(require(body, "path", str, file, where), file, where, anywhere),
        task_family=task_family, role=role, answer=answer, labels=labels, metrics=metrics,
        max_new_tokens=_positive_int(body, "max_new_tokens", file, where, bounds.TOKENS), embedded=embedded,
        embedded_twin=body.get("embedded_twin"), contains=_strings(body, "contains", file, where),
        source_note=body.get("source_note", ""), split=split, table=table, column=column,
        published_as=published_as, file=str(file))


def parse_datasets(raw: dict, file: Path, tables: dict[str, DatasetTable] | None = None,
                   known: dict[str, DatasetEntry] | None = None, anywhere: bool = False) -> dict[str, DatasetEntry]:
    """One catalogue file's datasets, validated. tables: every table of the catalogue (default: the file's
    own); known: entries of the files read before this one (names must not repeat; references may point there);
    anywhere: a user catalogue (its local paths are absolute)."""
    tables = parse_tables(raw, file) if tables is None else tables
    known = known or {}
    out = {}
    for name, body in require(raw, "datasets", dict, file, "").items():
        if name in known:
            raise _entry_error(file, f"datasets.{name}", f"already declared in {known[name].file}; allowed: a new name")
        out[name] = _dataset(str(name), body, file, tables, anywhere)
    everything = {**known, **out}
    for entry in out.values():
        for ref_field, refs in (("embedded_twin", [entry.embedded_twin] if entry.embedded_twin else []),
                                ("contains", list(entry.contains))):
            for ref in refs:
                if ref not in everything:
                    raise _entry_error(file, f"datasets.{entry.name}.{ref_field}",
                                       f"unknown dataset {ref!r}{did_you_mean(str(ref), everything)}; "
                                       f"allowed: {', '.join(sorted(everything))}")
    columns: dict[tuple, str] = {}
    for entry in everything.values():
        if entry.column is not None:
            other = columns.setdefault((entry.table, entry.column), entry.name)
            if other != entry.name:
                raise _entry_error(Path(entry.file), f"datasets.{entry.name}.column",
                                   f"got {entry.column}, the position of {other} in table {entry.table}; "
                                   "allowed: a position no other dataset of the table has")
    return out


def _current():
    from benchmark.registry import catalogues  # builds on this module's parsers

    return catalogues.current()


def models() -> dict[str, ModelEntry]:
    """Every model of the current catalogue (catalogues.current(): shipped + the user's files)."""
    return _current().models


def datasets() -> dict[str, DatasetEntry]:
    """Every dataset of the current catalogue."""
    return _current().datasets


def tables() -> dict[str, DatasetTable]:
    """The report tables the current catalogue declares (id -> DatasetTable)."""
    return _current().tables


def model(name: str) -> ModelEntry:
    return _current().model(name)


def dataset(name: str) -> DatasetEntry:
    return _current().dataset(name)
