"""Grid expansion: a parsed Suite -> a list of frozen TrialSpecs, every cell validated.

Resolution order for one cell: suite defaults, then the grid values of the cell, then every
override whose `when` matches (in file order). Model resources start from the catalogue and
are overridden by the suite. What the catalogue and the settings alone decide is checked here:
unknown models and datasets, dataset roles, value ranges, adapt stages, contaminated training sets.
The checks that need the method and task registries (method arguments, method x model family,
task kinds, metric names) are the planner's (benchmark/planner.py), which resolves every spec.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math

from benchmark.errors import UserError
from benchmark.registry import catalogue, catalogues
from benchmark.registry.catalogues import Catalogue
from benchmark.registry.spec import TrialSpec
from benchmark.registry.stages import AdaptStage, parse_stages
from benchmark.registry.suite import MAX_TRIALS, SCALAR_KEYS, SECTIONS, Suite

# What `run --embedded` caps, so a whole paper grid rehearses on a laptop in minutes.
EMBEDDED_CAPS = {"train.max_train_examples": 512, "train.max_steps": 60, "eval.max_eval_examples": 48,
                 "eval.max_new_tokens": 48}


_IMMUTABLE = (str, int, float, bool, type(None))


def _copy(value):
    # Scalars need no copy; deepcopy of every grid value dominated expanding large grids.
    return value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value)


def set_path(cfg: dict, path: str, value) -> None:
    head, _, rest = path.partition(".")
    if rest:
        cfg.setdefault(head, {})[rest] = _copy(value)
    elif isinstance(value, dict) and head in (*SECTIONS, "method_args"):
        cfg.setdefault(head, {}).update(copy.deepcopy(value))
    else:
        cfg[head] = _copy(value)


def get_path(cfg: dict, path: str):
    head, _, rest = path.partition(".")
    if not rest:
        return cfg.get(head)
    section = cfg.get(head, {})
    if rest in section:
        return section[rest]
    if head in SECTIONS:  # not set anywhere: the dataclass default decides
        defaults = {f.name: f.default for f in dataclasses.fields(SECTIONS[head])}
        return defaults.get(rest)
    return None


def matches(when: dict, cfg: dict, cell: dict) -> bool:
    for key, expected in when.items():
        # A grid axis that is a setting path (train.learning_rate) compares its value, not its display label.
        is_setting = key in SCALAR_KEYS or key.partition(".")[0] in (*SECTIONS, "method_args")
        actual = get_path(cfg, key) if is_setting or key not in cell else cell[key]
        options = expected if isinstance(expected, list) and not isinstance(actual, list) else [expected]
        if actual not in options:
            return False
    return True


def _label(value) -> str:
    if isinstance(value, dict):
        if "label" in value:
            return value["label"]
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return "+".join(map(str, value))
    return str(value)


def _cells(suite: Suite):
    axes = list(suite.grid.items())
    count = math.prod(len(values) for _, values in axes) if axes else 1
    if count > MAX_TRIALS:
        sizes = " x ".join(f"{axis}({len(values)})" for axis, values in axes)
        raise UserError(f"{suite.file}: grid: {sizes} = {count} cells; allowed: at most {MAX_TRIALS}")
    for combo in itertools.product(*(values for _, values in axes)):
        cfg = {}
        for path, value in suite.defaults.items():
            set_path(cfg, path, value)
        cell = {}
        for (axis, _), value in zip(axes, combo):
            cell[axis] = _label(value)
            if isinstance(value, dict):
                for path, sub in value.items():
                    if path != "label":
                        set_path(cfg, path, sub)
            else:
                set_path(cfg, axis, value)
        yield cfg, cell


def where(suite: Suite, cell: dict) -> str:
    """How an error names a cell: the suite file and the cell's grid coordinates."""
    coords = ", ".join(f"{k}={v}" for k, v in cell.items())
    return f"{suite.file}: cell ({coords})" if coords else f"{suite.file}: defaults"


def build_spec(suite: Suite, cfg: dict, cell: dict, cat: Catalogue) -> TrialSpec:
    here = where(suite, cell)
    for required in ("model", "method", "train_data", "eval_data"):
        if required not in cfg:
            raise UserError(f"{here}: {required}: missing; set it in defaults, the grid or an override")

    def checked(field: str, fn, *args):
        try:
            return fn(*args)
        except UserError as exc:
            raise UserError(f"{here}: {field}: {exc}") from None

    model = checked("model", cat.model, cfg["model"])
    method_args = dict(cfg.get("method_args", {}))
    train_entry = checked("train_data", cat.dataset, cfg["train_data"])
    dev_entry = checked("dev_data", cat.dataset, cfg["dev_data"]) if cfg.get("dev_data") else None
    if dev_entry is not None and dev_entry.role != "dev":
        raise UserError(f"{here}: dev_data: {dev_entry.name!r} has role {dev_entry.role}; allowed: a dataset with role: dev")
    adapt = _adapt_stages(cfg.get("adapt"), here)
    eval_entries = [checked("eval_data", cat.dataset, name) for name in cfg["eval_data"]]
    if train_entry.role != "train":
        raise UserError(f"{here}: train_data: {train_entry.name!r} is an evaluation set; allowed: a dataset with role: train")
    leaked = sorted(set(train_entry.contains) & {e.name for e in eval_entries})
    if leaked and not suite.allow_contaminated_train:
        raise UserError(f"{here}: train_data: {train_entry.name} holds test items of {', '.join(leaked)}; "
                        "allowed: a training set disjoint from eval_data (set allow_contaminated_train: true to force it)")
    sections = {}
    for name, cls in SECTIONS.items():
        values = dict(cfg.get(name, {}))
        if name == "resources":
            values = {**model.resources, **values}
        try:
            sections[name] = cls(**values)
        except ValueError as exc:
            raise UserError(f"{here}: {exc}") from None
    forgetting = sections["eval"].forgetting  # recorded with the trial's entries; its kind: planner.py checks it
    forgetting_entry = checked("eval.forgetting", cat.dataset, forgetting) if forgetting else None
    dtype = cfg.get("dtype", model.dtype)
    if dtype not in catalogue.DTYPES:
        raise UserError(f"{here}: dtype: got {dtype!r}; allowed: {', '.join(catalogue.DTYPES)}")
    return TrialSpec(
        suite=suite.name, suite_version=suite.version, model=model.name, model_source=model.source,
        model_family=model.model_family, method=cfg["method"], method_args=method_args, train_data=train_entry.name,
        eval_data=tuple(e.name for e in eval_entries), train=sections["train"], eval=sections["eval"],
        resources=sections["resources"], dtype=dtype, trust_remote_code=model.trust_remote_code, cell=cell,
        dev_data=dev_entry.name if dev_entry else None, adapt=adapt,
        catalogue=cat.recorded([model.name], [e.name for e in (train_entry, dev_entry, *eval_entries, forgetting_entry) if e]
                               + [stage.corpus for stage in adapt if stage.corpus and stage.corpus in cat.datasets]),
    )


def _adapt_stages(raw, here: str) -> tuple[AdaptStage, ...]:
    """The cell's masked-LM stages, parsed here once (the spec holds them; nothing downstream parses again)."""
    try:
        return parse_stages(raw)
    except ValueError as exc:
        raise UserError(f"{here}: {exc}") from None


def to_embedded(cfg: dict, here: str, embedded_settings: dict | None, cat: Catalogue) -> dict:
    """The same cell on the embedded twins: tiny model of the family, embedded task of the format, capped sizes."""
    cfg = copy.deepcopy(cfg)
    model = cat.model(cfg["model"])
    if not model.is_embedded:
        if not model.embedded_twin:
            raise UserError(f"{here}: model: {model.name} has no embedded_twin in {model.file}")
        cfg["model"] = model.embedded_twin
        cfg.pop("resources", None)
        cfg.pop("dtype", None)

    def twin(name: str) -> str:
        entry = cat.dataset(name)
        if not entry.embedded and not entry.embedded_twin:
            raise UserError(f"{here}: dataset {name} has no embedded_twin in {entry.file}")
        return name if entry.embedded else entry.embedded_twin

    cfg["train_data"], cfg["eval_data"] = twin(cfg["train_data"]), list(dict.fromkeys(map(twin, cfg["eval_data"])))
    if cfg.get("dev_data"):
        cfg["dev_data"] = twin(cfg["dev_data"])
    if cfg.get("eval", {}).get("forgetting"):
        cfg["eval"]["forgetting"] = twin(cfg["eval"]["forgetting"])
    cfg["adapt"] = [{**stage, "corpus": twin(stage["corpus"])} if isinstance(stage, dict) and stage.get("corpus")
                    else stage for stage in cfg.get("adapt") or []]
    for path, cap in EMBEDDED_CAPS.items():
        current = get_path(cfg, path)
        set_path(cfg, path, cap if current is None else min(current, cap))
    for path, value in (embedded_settings or {}).items():  # the suite's own rehearsal budget comes last
        set_path(cfg, path, value)
    return cfg


def expand(suite: Suite, embedded: bool = False, catalogue: Catalogue | None = None) -> list[TrialSpec]:
    """The suite's TrialSpecs against `catalogue`, which holds the suite's own sections (catalogues.for_suite;
    default: the current catalogue plus them)."""
    cat = catalogue or catalogues.for_suite(suite)
    specs: dict[str, TrialSpec] = {}
    if embedded and suite.embedded.get("grid"):  # the rehearsal's smaller axes (e.g. fewer seeds)
        suite = dataclasses.replace(suite, grid={**suite.grid, **suite.embedded["grid"]})
    for cfg, cell in _cells(suite):
        if any(matches(when, cfg, cell) for when in suite.exclude):
            continue
        for when, setting in suite.overrides:
            if matches(when, cfg, cell):
                for path, value in setting.items():
                    set_path(cfg, path, value)
        if embedded:
            planned = copy.deepcopy(cfg)  # embedded overrides match the cell as planned for the real models
            cfg = to_embedded(cfg, where(suite, cell), suite.embedded.get("set"), cat)
            for when, setting in suite.embedded.get("overrides", []):
                if matches(when, planned, cell):
                    for path, value in setting.items():
                        set_path(cfg, path, value)
            suite_for_spec = dataclasses.replace(suite, name=f"{suite.name}-embedded", allow_contaminated_train=True)
        else:
            suite_for_spec = suite
        spec = build_spec(suite_for_spec, cfg, cell, cat)
        trial_id = spec.trial_id  # a hash of the whole spec: compute it once per cell
        if trial_id in specs:
            other = specs[trial_id].cell
            raise UserError(f"{where(suite, cell)}: resolves to the same trial as cell "
                            f"({', '.join(f'{k}={v}' for k, v in other.items())}); allowed: cells that differ "
                            "(check overrides that set the same value for several cells)")
        specs[trial_id] = spec
    if not specs:
        raise UserError(f"{suite.file}: grid: every cell is excluded; allowed: a grid with at least one trial")
    return list(specs.values())


def spec_fields(spec: TrialSpec) -> dict:
    """A flat view of a spec for --filter and plan tables: setting paths and grid axes -> strings."""
    flat = {"trial_id": spec.trial_id, "model": spec.model, "method": spec.method, "model_family": spec.model_family,
            "train_data": spec.train_data, "eval_data": ",".join(spec.eval_data), "dtype": spec.dtype}
    for key, value in spec.method_args.items():
        flat[f"method_args.{key}"] = value
    for section in ("train", "eval", "resources"):
        for key, value in dataclasses.asdict(getattr(spec, section)).items():
            flat[f"{section}.{key}"] = value
    flat.update(spec.cell)
    return {k: str(v) for k, v in flat.items()}


def apply_filters(specs: list[TrialSpec], filters: list[str]) -> list[TrialSpec]:
    wanted = []
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UserError(f"--filter {text!r}: allowed: key=value, e.g. method=lora or train.learning_rate=0.0003")
        wanted.append((key.strip(), value.strip()))
    if specs and wanted:
        known = set(spec_fields(specs[0]))
        for key, _ in wanted:
            if key not in known:
                from benchmark.errors import did_you_mean

                raise UserError(f"--filter {key}: unknown key{did_you_mean(key, known)}; allowed: {', '.join(sorted(known))}")
    return [s for s in specs if all(spec_fields(s).get(k) == v for k, v in wanted)]
