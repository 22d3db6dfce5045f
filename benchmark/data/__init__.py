"""Datasets: where a catalogue entry's files are, read by the format the entry names.

`load_examples(entry, data_root)` resolves the folder the entry's path is relative to (the data root,
or the embedded data dir, generated there on first use) and hands the format module
(benchmark/registry/formats, one per on-disk format) a Source to read. LLM-Adapters records give
`Example` rows (the generation tasks); GLUE/DAPT jsonl give `ClassificationExample`s, SQuAD gives
`SquadExample`s and the `text` format (corpora for masked-LM stages) a list of str documents.
Folder-of-splits formats read one split: the entry's `split:` when it names one, else the split the
format reads for the entry's role.
"""

from __future__ import annotations

from pathlib import Path

from benchmark import paths
from benchmark.data.example import Example
from benchmark.registry import formats
from benchmark.registry.catalogue import DatasetEntry

__all__ = ["Example", "load_examples", "resolve_root", "dataset_path", "split_of"]


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


def split_of(entry: DatasetEntry) -> str | None:
    """The split a folder-of-splits entry reads: its `split:`, else the one its format reads for its role;
    None for a format whose path names one file."""
    fmt = formats.get(entry.format)
    if entry.split:
        return entry.split
    return None if fmt.splits == () else fmt.default_split[entry.role]


def load_examples(entry: DatasetEntry, data_root: Path | str | None) -> list:
    """Every example of the dataset an entry names; UserError (one line) when missing or malformed."""
    source = formats.Source(dataset=entry.name, root=resolve_root(entry, data_root), path=entry.path,
                            split=split_of(entry), labelled=entry.role != "train", note=entry.source_note)
    return formats.get(entry.format).load(source)
