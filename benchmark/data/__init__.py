"""Datasets: one loader per on-disk format, chosen by the catalogue entry's `format`.

`load_examples(entry, data_root)` reads what a DatasetEntry names. LLM-Adapters files give
`Example` rows (the generation tasks); GLUE/DAPT jsonl give `ClassificationExample`s, SQuAD gives
`SquadExample`s and the `text` format (corpora for masked-LM stages) a list of str documents.
Folder-of-splits formats read one split: the entry's `split:` when it names one, else the split its
role implies (SPLIT_FOR_ROLE). Embedded entries live under paths.embedded_data_dir(), generated
there on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmark import paths
from benchmark.data.example import Example
from benchmark.data.llm_adapters import HINT, missing_file_error
from benchmark.errors import UserError
from benchmark.registry.catalogue import DatasetEntry

__all__ = ["Example", "load_examples", "resolve_root", "dataset_path", "split_of", "LOADERS"]

# role -> split read from a folder of split files, per format. eval: GLUE hides its test labels, so its
# dev set ("validation") is the papers' test set; DAPT reports its test split; SQuAD its dev file.
# dev (early stopping, model selection): DAPT's and SQuAD's dev files; for GLUE and HF datasets the
# validation split. GLUE papers select on the same dev set they report (UniPELT's low-resource protocol
# instead samples its dev set from train, which the training stage does). MNLI's dev split is named
# validation_matched: its entries say so with `split:`.
EVAL_SPLIT = {"glue-jsonl": "validation", "dapt-jsonl": "test", "squad-v1": "dev", "hf": "validation"}
DEV_SPLIT = {"glue-jsonl": "validation", "dapt-jsonl": "dev", "squad-v1": "dev", "hf": "validation"}
SPLIT_FOR_ROLE = {"eval": EVAL_SPLIT, "dev": DEV_SPLIT}


def resolve_root(entry: DatasetEntry, data_root: Path | str | None, generate: bool = True) -> Path:
    """The folder entry.path is relative to: the embedded data dir (generated unless generate=False)
    for embedded entries, else data_root."""
    if entry.embedded:
        root = paths.embedded_data_dir()
        if generate:
            from benchmark.data.embedded import ensure

            ensure(root)
        return root
    return Path(data_root if data_root is not None else paths.data_dir())


def dataset_path(entry: DatasetEntry, data_root: Path | str | None, generate: bool = True) -> Path:
    return resolve_root(entry, data_root, generate) / entry.path


def split_of(entry: DatasetEntry) -> str:
    """The split a folder-of-splits entry reads: its `split:`, else the one its role implies."""
    if entry.split:
        return entry.split
    return "train" if entry.role == "train" else SPLIT_FOR_ROLE[entry.role][entry.format]


def _require(entry: DatasetEntry, path: Path) -> Path:
    if not path.exists():
        raise missing_file_error(entry.name, path, entry.source_note)
    return path


def _llm_adapters(entry: DatasetEntry, path: Path) -> list:
    from benchmark.data.llm_adapters import load_file

    return load_file(path, entry.name, entry.source_note, need_answer=entry.role != "train")  # training rows may lack one


def _split_files(module_name: str) -> Callable[[DatasetEntry, Path], list]:
    """A loader for folder-of-splits formats: the role's split file, or the file entry.path names."""

    def load(entry: DatasetEntry, path: Path) -> list:
        import importlib

        module = importlib.import_module(f"benchmark.data.{module_name}")
        file = path if path.is_file() else _require(entry, module.split_path(path, split_of(entry)))
        return module.load_file(file)

    return load


def _text(entry: DatasetEntry, path: Path) -> list[str]:
    from benchmark.data.text_corpus import load_file

    return load_file(path)


def _hf_rows(entry: DatasetEntry, source: str, config: str, split: str):
    """The split's rows: a folder written by `save_to_disk` (the way to carry a hub dataset to an offline
    machine) is read with load_from_disk; anything else (hub id, folder of data files) with load_dataset."""
    import datasets

    folder = Path(source)
    if (folder / "dataset_dict.json").is_file() or (folder / "dataset_info.json").is_file():
        saved = datasets.load_from_disk(str(folder))
        if isinstance(saved, datasets.DatasetDict):
            if split not in saved:
                raise UserError(f"dataset {entry.name!r}: {folder}: no split {split!r}; allowed: "
                                f"{', '.join(saved)} (set `split:` in suites/datasets.yaml)")
            return saved[split]
        return saved
    return datasets.load_dataset(source, config or None, split=split)


def _hf(entry: DatasetEntry, data_root: Path | str | None) -> list:
    """entry.path = "<hub id or local dataset folder>[:<config>]", a folder being looked for under the data
    root first (for an embedded entry, under the embedded data dir), read by `datasets` (its cache and offline mode apply). Rows are read by their
    fields: LLM-Adapters records (instruction, input, output, answer), SQuAD (context, question, answers)
    or GLUE/DAPT-style classification (sentence[s] or another GLUE pair, or text; label)."""
    from benchmark.data.glue_jsonl import row_to_example
    from benchmark.data.squad_v1 import SquadExample

    name, _, config = entry.path.partition(":")
    local = resolve_root(entry, data_root) / name
    source = str(local) if entry.embedded or local.exists() else name
    try:
        rows = _hf_rows(entry, source, config, split_of(entry))
    except UserError:
        raise
    except Exception as exc:  # offline without a cached copy, unknown id, unknown split, ...
        raise UserError(f"dataset {entry.name!r}: could not load {entry.path!r} split {split_of(entry)!r} with "
                        f"`datasets` ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}); "
                        f"{entry.source_note} {HINT}") from None
    if {"instruction", "output"} <= set(rows.column_names):  # the LLM-Adapters record, e.g. a hub mirror of math_10k
        from benchmark.data.llm_adapters import parse_rows

        return parse_rows([{"input": "", **r} for r in rows], Path(entry.path), entry.name)
    if "context" in rows.column_names and "answers" in rows.column_names:
        return [SquadExample(id=str(r["id"]), question=r["question"], context=r["context"],
                             answers=tuple(r["answers"]["text"]), answer_starts=tuple(r["answers"]["answer_start"]),
                             title=r.get("title", "")) for r in rows]
    return [row_to_example(r, str(i), f"{entry.path}: row {i}") for i, r in enumerate(rows)]


LOADERS: dict[str, Callable[[DatasetEntry, Path], list]] = {
    "llm-adapters": _llm_adapters,
    "glue-jsonl": _split_files("glue_jsonl"),
    "dapt-jsonl": _split_files("dapt_jsonl"),
    "squad-v1": _split_files("squad_v1"),
    "text": _text,
}


def load_examples(entry: DatasetEntry, data_root: Path | str | None) -> list:
    """Every example of the dataset an entry names; UserError (one line) when missing or malformed."""
    if entry.format == "hf":
        return _hf(entry, data_root)
    if entry.format not in LOADERS:
        raise UserError(f"dataset {entry.name!r}: format {entry.format!r}; allowed: {', '.join([*LOADERS, 'hf'])}")
    path = _require(entry, dataset_path(entry, data_root))
    return LOADERS[entry.format](entry, path)
