"""The Catalogue: the shipped catalogue files plus the user's own, combined under one set of rules.

The shipped files (suites/models.yaml, suites/datasets.yaml) come first, then the files
$PEFT_BENCH_CATALOGUE lists (os.pathsep separated), then every `--catalogue FILE` in order, then the
`models:` / `datasets:` / `tables:` sections of the suite being planned (seen by that suite only). A
user file has the shipped schema. In it:

- relative paths resolve against the file's folder: a model `source` that is a local path (it starts
  with '.', '~', or names something beside the file), a dataset `path` of a format that reads files, and
  a hub format's path that names a folder beside the file (absolute paths are allowed there; the shipped
  catalogue's dataset paths stay under the data root);
- a name already declared by an earlier file is an error naming both files, unless the entry says
  `replaces: true` (which must then replace something).

Every entry from a user file keeps its origin (file and body as written). A trial records the user
entries it uses in TrialSpec.catalogue, which is part of its id, so a changed user entry is a new
trial, and a worker in another process rebuilds them from the spec (Catalogue.with_recorded).
The command line makes the user's catalogue current for one command (`using`); the planner takes
it explicitly.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import UserError, did_you_mean
from benchmark.paths import SUITES_DIR
from benchmark.registry import formats
from benchmark.registry.catalogue import DatasetEntry, DatasetTable, ModelEntry, parse_datasets, parse_models, parse_tables
from benchmark.registry.yamlio import check_keys, load_yaml

ENV = "PEFT_BENCH_CATALOGUE"  # user catalogue files, os.pathsep separated
OLD_ENV = "PEFT_BENCH_DATASETS"  # its predecessor (dataset files only): refused, not silently ignored
SECTIONS = ("models", "datasets", "tables")


def shipped_files() -> tuple[Path, ...]:
    return (SUITES_DIR / "models.yaml", SUITES_DIR / "datasets.yaml")


def shown(file: str | Path) -> str:
    """A catalogue file as messages name it: a shipped one relative to the checkout (suites/models.yaml)."""
    file = Path(file)
    return str(file.relative_to(SUITES_DIR.parent)) if file.is_relative_to(SUITES_DIR.parent) else str(file)


@dataclass(frozen=True)
class Origin:
    """Where a user entry comes from: its file and its body as written there (`replaces` left out)."""

    file: str
    body: dict


@dataclass(frozen=True, eq=False)
class Catalogue:
    user_files: tuple[str, ...]  # the user's catalogue files read, in order (absolute; a suite's own not included)
    models: dict[str, ModelEntry]
    datasets: dict[str, DatasetEntry]
    tables: dict[str, DatasetTable]
    origins: dict[str, Origin]  # "models.NAME" / "datasets.NAME" / "tables.ID" -> origin, for user entries only

    def _files_text(self) -> str:
        files = [*shipped_files(), *map(Path, self.user_files)]
        files += sorted({Path(o.file) for o in self.origins.values()} - set(files))
        return ", ".join(map(shown, files))

    def model(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise UserError(f"unknown model {name!r}{did_you_mean(name, self.models)}; "
                            f"allowed: {', '.join(sorted(self.models))} ({self._files_text()})")
        return self.models[name]

    def dataset(self, name: str) -> DatasetEntry:
        if name not in self.datasets:
            raise UserError(f"unknown dataset {name!r}{did_you_mean(name, self.datasets)}; "
                            f"allowed: {', '.join(sorted(self.datasets))} ({self._files_text()})")
        return self.datasets[name]

    def recorded(self, models: list[str], datasets: list[str]) -> dict:
        """What a trial using these entries records (TrialSpec.catalogue): each user entry among them, and the
        user tables its datasets are printed in, as {"file": ..., "entry": body as written}."""
        keys = [f"models.{name}" for name in models] + [f"datasets.{name}" for name in datasets]
        keys += [f"tables.{self.datasets[name].table}" for name in datasets]
        return {key: {"file": self.origins[key].file, "entry": copy.deepcopy(self.origins[key].body)}
                for key in sorted(set(keys)) if key in self.origins}

    def with_recorded(self, recorded: dict) -> Catalogue:
        """This catalogue with the user entries a spec recorded (a worker that was not given the user's files
        rebuilds them from the spec; what was planned wins over what the files say now)."""
        if all(key in self.origins and self.origins[key].body == item["entry"] for key, item in recorded.items()):
            return self
        sources = []
        for key, item in recorded.items():
            section, _, name = key.partition(".")
            sources.append((Path(item["file"]), section, name, dict(item["entry"], replaces=True)))
        return _overlay(self, sources, rebuilt=True)

    def extended(self, file: Path, raw: dict) -> Catalogue:
        """This catalogue and one more user source: a suite file's own sections."""
        return _add_file(self, Path(file).resolve(), raw, record_file=False)


def _relative_path_like(value: str, base: Path) -> bool:
    return value.startswith((".", "~")) or (not Path(value).is_absolute() and (base / value).exists())


def _as_absolute(value: str, base: Path) -> str:
    return os.path.normpath(base / Path(value).expanduser())


def _normalized(section: str, body, base: Path):
    """A user entry with its relative paths made absolute against its file's folder (base)."""
    if not isinstance(body, dict):
        return body  # the parser names what is wrong
    body = {k: v for k, v in body.items() if k != "replaces"}
    source = body.get("source")
    if section == "models" and isinstance(source, str) and ":" not in source.split("/", 1)[0] \
            and _relative_path_like(source, base):
        body["source"] = _as_absolute(source, base)
    path, fmt = body.get("path"), body.get("format")
    if section != "datasets" or not isinstance(path, str) or fmt not in formats.FORMATS or body.get("embedded") \
            or Path(path).is_absolute():
        return body
    if formats.get(fmt).local:
        body["path"] = _as_absolute(path, base)
    else:  # a hub id[:config], or a saved dataset's folder: resolved when the folder lies beside the file
        name, sep, config = path.partition(":")
        if name and (base / name).exists():
            body["path"] = _as_absolute(name, base) + sep + config
    return body


def _replaces(body, file: Path, where: str) -> bool:
    value = body.get("replaces", False) if isinstance(body, dict) else False
    if not isinstance(value, bool):
        raise UserError(f"{file}: {where}.replaces: got {value!r}; allowed: true, false")
    return value


def _check_shadowing(cat: Catalogue, file: Path, section: str, raw_section: dict) -> None:
    known = getattr(cat, section)
    for name, body in raw_section.items():
        where = f"{section}.{name}"
        replaces = _replaces(body, file, where)
        if name in known and not replaces:
            other = known[name].file if section != "tables" else _table_file(cat, name)
            raise UserError(f"{file}: {where}: already declared in {other}; allowed: a new name, or "
                            "replaces: true on the entry to replace it")
        if replaces and name not in known:
            raise UserError(f"{file}: {where}.replaces: true but no earlier catalogue file declares {name!r}; "
                            "allowed: false (a new entry), or the name of an entry to replace")


def _table_file(cat: Catalogue, table_id: str) -> str:
    origin = cat.origins.get(f"tables.{table_id}")
    return origin.file if origin else str(shipped_files()[1])


def _add_file(cat: Catalogue, file: Path, raw: dict, record_file: bool = True) -> Catalogue:
    """cat plus one user file (or a suite's sections): shadowing checked, paths resolved, origins kept."""
    sections = {key: {} if raw[key] is None else raw[key] for key in SECTIONS if key in raw}
    for key, value in sections.items():
        if not isinstance(value, dict):
            raise UserError(f"{file}: {key}: got {value!r}; allowed: a mapping of name -> entry")
    sources = [(file, section, name, body) for section, entries in sections.items() for name, body in entries.items()]
    for section, entries in sections.items():
        _check_shadowing(cat, file, section, entries)
    out = _overlay(cat, sources)
    if record_file:
        out = Catalogue(user_files=(*cat.user_files, str(file)), models=out.models, datasets=out.datasets,
                        tables=out.tables, origins=out.origins)
    return out


# What only expansion reads (before a spec exists): left out when a worker rebuilds a spec's entries, whose
# references may name entries the spec did not record.
EXPANSION_ONLY = ("embedded_twin", "contains")


def _overlay(cat: Catalogue, sources: list[tuple[Path, str, str, dict]], rebuilt: bool = False) -> Catalogue:
    """cat with (file, section, name, body) entries added or replacing theirs; bodies as written. rebuilt:
    entries recorded by a spec (their references to other entries are dropped)."""
    models, datasets, tables, origins = dict(cat.models), dict(cat.datasets), dict(cat.tables), dict(cat.origins)
    by_file: dict[Path, dict[str, dict]] = {}
    for file, section, name, body in sources:
        by_file.setdefault(file, {}).setdefault(section, {})[name] = body
        if isinstance(body, dict):
            origins[f"{section}.{name}"] = Origin(file=str(file), body={k: v for k, v in body.items() if k != "replaces"})
    for file, sections in by_file.items():  # tables first: a dataset may be printed in a table of any file
        tables.update(parse_tables({"tables": sections.get("tables", {})}, file))
    for file, sections in by_file.items():
        base = file.parent
        normal = {section: {name: _normalized(section, body, base) for name, body in entries.items()}
                  for section, entries in sections.items()}
        if rebuilt:
            normal = {section: {name: {k: v for k, v in body.items() if k not in EXPANSION_ONLY}
                                for name, body in entries.items()} for section, entries in normal.items()}
        if "models" in normal:
            known = {k: v for k, v in models.items() if k not in normal["models"]}
            models.update(parse_models({"models": normal["models"]}, file, known))
        if "datasets" in normal:
            known = {k: v for k, v in datasets.items() if k not in normal["datasets"]}
            datasets.update(parse_datasets({"datasets": normal["datasets"]}, file, tables, known, anywhere=True))
    return Catalogue(user_files=cat.user_files, models=models, datasets=datasets, tables=tables, origins=origins)


@functools.cache
def _shipped() -> Catalogue:
    models_file, datasets_file = shipped_files()
    raw = load_yaml(datasets_file)
    check_keys(raw, {"tables", "datasets"}, datasets_file, "")
    tables = parse_tables(raw, datasets_file)
    return Catalogue(user_files=(), models=parse_models(load_yaml(models_file), models_file),
                     datasets=parse_datasets(raw, datasets_file, tables), tables=tables, origins={})


@functools.cache
def _load(stamps: tuple[tuple[str, tuple[int, int] | None], ...]) -> Catalogue:
    """The catalogue of these user files (each with its modification time, so an edited file reads again)."""
    cat = _shipped()
    for file, _ in stamps:
        raw = load_yaml(Path(file))
        check_keys(raw, set(SECTIONS), Path(file), "")
        if not any(raw.get(key) for key in SECTIONS):  # a file that declares nothing is a mistake (the wrong file?)
            raise UserError(f"{file}: top level: no entries; allowed: models:, datasets: and/or tables: with entries")
        cat = _add_file(cat, Path(file), raw)
    return cat


def user_files(extra: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """$PEFT_BENCH_CATALOGUE's files, then `extra` (--catalogue), absolute, each once."""
    if os.environ.get(OLD_ENV, "").strip():
        raise UserError(f"{OLD_ENV}={os.environ[OLD_ENV]}: no longer read; allowed: {ENV} (the same list of files, "
                        "which may now declare models: too)")
    listed = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()] + [str(p) for p in extra]
    return tuple(dict.fromkeys(os.path.abspath(os.path.expanduser(p)) for p in listed))


def _stamp(file: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(file)
    except OSError:
        return None  # load_yaml says the file is missing
    return stat.st_mtime_ns, stat.st_size


def load(extra: list[str] | tuple[str, ...] = ()) -> Catalogue:
    """The shipped catalogue plus $PEFT_BENCH_CATALOGUE's files plus `extra` (the --catalogue files)."""
    return _load(tuple((file, _stamp(file)) for file in user_files(extra)))


_CURRENT: contextvars.ContextVar[Catalogue | None] = contextvars.ContextVar("peft_bench_catalogue", default=None)


def current() -> Catalogue:
    """The catalogue of the command being run (`using`), else the shipped files plus $PEFT_BENCH_CATALOGUE's."""
    return _CURRENT.get() or load()


@contextlib.contextmanager
def using(cat: Catalogue):
    """Make `cat` current while the block runs: what one command does with its --catalogue files, so the
    readers deep in the report and `params` see the same entries the planner was given."""
    token = _CURRENT.set(cat)
    try:
        yield cat
    finally:
        _CURRENT.reset(token)


def for_suite(suite, base: Catalogue | None = None) -> Catalogue:
    """The catalogue a suite is planned against: `base` (default: current) plus the suite's own sections."""
    base = base or current()
    return base.extended(suite.file, suite.catalogue) if suite.catalogue else base
