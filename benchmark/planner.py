"""The planner: TrialSpecs -> fully resolved trials, every check done before any model or dataset loads.

`registry.plan` expands a suite into TrialSpecs (whose hashes are the trial ids). The planner resolves
each spec once against the catalogue and the method and task registries: the model and dataset
entries, the task, the method's validated Config and the adapt stages with their corpora. Whatever
cannot run is a one-line UserError here (`peft-bench validate` / `plan` / `run`), never a failure
mid-trial: an unknown method argument, a method that does not support the model family, a model
that cannot carry the task's head, train, dev and eval sets of different task kinds, an unknown
metric name. The runner takes a ResolvedTrial as given and looks nothing up again.

Every lookup goes through one Catalogue (benchmark/registry/catalogues.py: the shipped files, the user's
and the suite's own sections), passed explicitly; a spec's recorded user entries are always part of it, so
a worker that was given only the spec resolves the entries that were planned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmark import methods, metrics, models, tasks
from benchmark.adapt.stage import PlannedStage
from benchmark.errors import UserError
from benchmark.registry import apply_filters, catalogues, expand, load_suite
from benchmark.registry.catalogue import CAUSAL_FAMILIES, DatasetEntry, ModelEntry
from benchmark.registry.catalogues import Catalogue
from benchmark.registry.expand import where
from benchmark.registry.spec import TrialSpec
from benchmark.registry.stages import AdaptStage
from benchmark.registry.suite import Suite


@dataclass(frozen=True)
class ResolvedTrial:
    spec: TrialSpec  # what the trial id hashes
    model: ModelEntry
    task: tasks.Task
    train_data: DatasetEntry
    dev_data: DatasetEntry | None  # the dev dataset; None: train.val_set_size examples held out of train_data
    eval_data: tuple[DatasetEntry, ...]  # never empty
    method_config: Any  # the method's validated Config, built once
    adapt_stages: tuple[PlannedStage, ...]
    forgetting: DatasetEntry | None = None  # eval.forgetting's corpus (a causal LM's loss on it); None: not measured

    @property
    def trial_id(self) -> str:
        return self.spec.trial_id

    @property
    def scoring_entry(self) -> DatasetEntry:
        """The first eval set: its metric decides the head (regression or not) and scores the dev split,
        so model selection optimises what the trial reports."""
        return self.eval_data[0]

    @property
    def dev_name(self) -> str:
        """The name the dev split's score is stored under: the dev set, else the training set it was held out of."""
        return (self.dev_data or self.train_data).name


def resolve(spec: TrialSpec, here: str | None = None, catalogue: Catalogue | None = None) -> ResolvedTrial:
    """The spec with everything it names looked up in `catalogue` (default: the current one) plus the user
    entries the spec recorded, and checked; UserError (one line, prefixed with `here`: the suite file and cell)
    for anything that cannot run."""
    here = here or f"trial {spec.trial_id} of suite {spec.suite}"

    def checked(field: str, fn, *args):
        try:
            return fn(*args)
        except UserError as exc:
            raise UserError(f"{here}: {field}: {exc}") from None

    if not spec.eval_data:
        raise UserError(f"{here}: eval_data: empty; allowed: one or more evaluation datasets")
    cat = checked("catalogue", (catalogue or catalogues.current()).with_recorded, spec.catalogue)
    model = checked("model", cat.model, spec.model)
    _check_model_matches(spec, model, here)
    checked("method", methods.check_supported, spec.method, model.model_family)
    method_config = checked("method_args", methods.build_config, spec.method, spec.method_args)
    checked("method_args", methods.check_supported, spec.method, model.model_family, method_config)

    train_entry = checked("train_data", cat.dataset, spec.train_data)
    kind = checked("train_data", tasks.kind_of, train_entry)
    task = tasks.for_dataset(train_entry)
    checked("model", models.check_head, model, task.head_kind)  # e.g. a generation task on an encoder

    def same_kind(field: str, name: str) -> DatasetEntry:
        entry = checked(field, cat.dataset, name)
        other = checked(field, tasks.kind_of, entry)
        if other != kind:
            raise UserError(f"{here}: {field}: {name} is a {other} dataset; allowed: {kind} datasets "
                            f"like train_data {train_entry.name}")
        return entry

    eval_entries = tuple(same_kind("eval_data", name) for name in spec.eval_data)
    dev_entry = same_kind("dev_data", spec.dev_data) if spec.dev_data else None
    if spec.eval.quirk_on("select_on_reported_set") and task.selects_on_dev:
        # the quirk: select (early stopping, the learning-rate search) on the set the number is reported on
        if dev_entry is not None:
            raise UserError(f"{here}: eval.quirks.select_on_reported_set: on, but dev_data is {spec.dev_data}; "
                            "allowed: one of them (the quirk selects on the first eval set)")
        dev_entry = eval_entries[0]
    for entry in eval_entries:
        for name in entry.metrics:
            checked(f"eval_data: {entry.name}", metrics.get, name)

    return ResolvedTrial(spec=spec, model=model, task=task, train_data=train_entry, dev_data=dev_entry,
                         eval_data=eval_entries, method_config=method_config,
                         adapt_stages=tuple(_planned_stage(i, stage, here, cat) for i, stage in enumerate(spec.adapt)),
                         forgetting=_forgetting_corpus(spec, model, here, cat))


def _check_model_matches(spec: TrialSpec, model: ModelEntry, here: str) -> None:
    """A spec stored by an earlier plan must still name the catalogue's model, or it would run another one."""
    for field, planned, current in (("model_source", spec.model_source, model.source),
                                    ("model_family", spec.model_family, model.model_family),
                                    ("trust_remote_code", spec.trust_remote_code, model.trust_remote_code)):
        if planned != current:
            raise UserError(f"{here}: {field}: got {planned!r} but {catalogues.shown(model.file)} says {current!r} for "
                            f"{model.name}; allowed: the catalogue's value (plan the suite again)")


def _forgetting_corpus(spec: TrialSpec, model: ModelEntry, here: str, cat: Catalogue) -> DatasetEntry | None:
    """eval.forgetting's corpus entry: a dataset of task family corpus, measured on a causal LM only (the loss is
    a language model's next-token loss; an encoder has none to compare)."""
    name = spec.eval.forgetting
    if name is None:
        return None
    if model.model_family not in CAUSAL_FAMILIES:
        raise UserError(f"{here}: eval.forgetting: model {model.name} is an encoder ({model.model_family}), which has no "
                        f"next-token loss to measure forgetting with; allowed: causal LMs ({', '.join(CAUSAL_FAMILIES)}) "
                        "or eval.forgetting: null")
    try:
        corpus = cat.dataset(name)
    except UserError as exc:
        raise UserError(f"{here}: eval.forgetting: {exc}") from None
    if corpus.task_family != "corpus":
        raise UserError(f"{here}: eval.forgetting: {corpus.name!r} is a {corpus.task_family} dataset; "
                        "allowed: a dataset of task family corpus (unlabelled text)")
    return corpus


def _planned_stage(i: int, stage: AdaptStage, here: str, cat: Catalogue) -> PlannedStage:
    if stage.corpus is None:
        return PlannedStage(settings=stage, corpus=None)
    try:
        corpus = cat.dataset(stage.corpus)
    except UserError as exc:
        raise UserError(f"{here}: adapt[{i}].corpus: {exc}") from None
    if corpus.task_family != "corpus":
        raise UserError(f"{here}: adapt[{i}].corpus: {corpus.name!r} is a {corpus.task_family} dataset; "
                        "allowed: a dataset of task family corpus (unlabelled text)")
    return PlannedStage(settings=stage, corpus=corpus)


def plan(name_or_path: str, filters: list[str] | None = None, embedded: bool = False,
         catalogue: Catalogue | None = None) -> tuple[Suite, list[ResolvedTrial]]:
    """A suite's trials (those --filter keeps), each resolved and checked against `catalogue` (default: the
    current one) plus the suite's own sections; nothing is loaded."""
    suite = load_suite(name_or_path)
    cat = catalogues.for_suite(suite, catalogue)
    specs = apply_filters(expand(suite, embedded=embedded, catalogue=cat), filters or [])
    return suite, [resolve(spec, where(suite, spec.cell), cat) for spec in specs]


def datasets_needed(trials: list[ResolvedTrial]) -> list[DatasetEntry]:
    """Every dataset the trials read (training, dev, evaluation sets, adapt and forgetting corpora), each once, by
    name."""
    entries = {}
    for trial in trials:
        for entry in (trial.train_data, trial.dev_data, *trial.eval_data, *(s.corpus for s in trial.adapt_stages),
                      trial.forgetting):
            if entry is not None:
                entries[entry.name] = entry
    return [entries[name] for name in sorted(entries)]
