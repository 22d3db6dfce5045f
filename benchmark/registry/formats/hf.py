"""Hugging Face datasets: format `hf`, read by the `datasets` library (its cache and offline mode apply).

The catalogue path is "<hub id or local dataset folder>[:<config>]"; a folder is looked for under the
data root first (for an embedded entry, under the embedded data dir). A folder written by `save_to_disk`
(the way to carry a hub dataset to an offline machine) is read with load_from_disk; anything else (hub
id, folder of data files) with load_dataset. Rows are read by their fields: LLM-Adapters records
(instruction, input, output, answer), SQuAD (context, question, answers) or GLUE/DAPT-style
classification (sentence[s] or another GLUE pair, or text; label).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import UserError, first_line
from benchmark.registry.formats import HINT, Source, register
from benchmark.registry.formats.glue_jsonl import row_to_example
from benchmark.registry.formats.llm_adapters import parse_rows
from benchmark.registry.formats.squad_v1 import SquadExample, check_starts


def _rows(source: Source, location: str, config: str):
    import datasets

    folder = Path(location)
    if (folder / "dataset_dict.json").is_file() or (folder / "dataset_info.json").is_file():
        saved = datasets.load_from_disk(str(folder))
        if isinstance(saved, datasets.DatasetDict):
            if source.split not in saved:
                raise UserError(f"dataset {source.dataset!r}: {folder}: no split {source.split!r}; allowed: "
                                f"{', '.join(saved)} (set `split:` in the dataset's catalogue entry)")
            return saved[source.split]
        return saved
    return datasets.load_dataset(location, config or None, split=source.split)


class HuggingFace:
    name = "hf"
    splits = None  # the dataset defines its own split names
    local = False  # path is a hub id[:config] (or a saved dataset's folder), not a file to read
    default_split = {"train": "train", "dev": "validation", "eval": "validation"}
    task_families = ("math", "commonsense", "classification", "qa")

    def load(self, source: Source) -> list:
        name, _, config = source.path.partition(":")
        local = source.root / name
        location = str(local) if local.exists() else name
        try:
            rows = _rows(source, location, config)
        except UserError:
            raise
        except Exception as exc:  # offline without a cached copy, unknown id, unknown split, ...
            raise UserError(f"dataset {source.dataset!r}: could not load {source.path!r} split {source.split!r} with "
                            f"`datasets` ({type(exc).__name__}: {first_line(str(exc))}); {source.note} {HINT}") from None
        if {"instruction", "output"} <= set(rows.column_names):  # the LLM-Adapters record, e.g. a hub mirror of math_10k
            return parse_rows([{"input": "", **r} for r in rows], Path(source.path), source.dataset)
        if "context" in rows.column_names and "answers" in rows.column_names:
            examples = [SquadExample(id=str(r["id"]), question=r["question"], context=r["context"],
                                     answers=tuple(r["answers"]["text"]), answer_starts=tuple(r["answers"]["answer_start"]),
                                     title=r.get("title", "")) for r in rows]
            for i, example in enumerate(examples):
                check_starts(example, f"{source.path} split {source.split}: row {i} (id {example.id})")
            return examples
        return [row_to_example(r, str(i), f"{source.path}: row {i}") for i, r in enumerate(rows)]


register(HuggingFace())
