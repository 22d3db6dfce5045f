"""Which paper table a dataset belongs to, and the papers' column order.

The store knows an eval family (classification, qa, math, commonsense); the papers split
classification further into GLUE and the DAPT domain tasks and print their columns in a fixed
order. This is data about the papers, kept in one place; an embedded twin (emb-cola) counts as the
dataset it stands in for.
"""

from __future__ import annotations

from benchmark.report.published import real_dataset

# group -> (title, datasets in the PT+UniPELT paper's column order)
GROUPS = {
    "glue": ("GLUE", ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")),
    "domain": ("Domain tasks (DAPT)", ("chemprot", "rct", "acl_arc", "sciie", "hyperpartisan", "agnews",
                                       "helpfulness", "imdb")),
    "squad": ("SQuAD 1.1", ("squad",)),
}
_GROUP_OF = {d: g for g, (_, names) in GROUPS.items() for d in names}
METRIC_ORDER = ("em", "f1")  # SQuAD prints EM before F1


def group_of(dataset: str, family: str) -> str:
    return _GROUP_OF.get(real_dataset(dataset)[0], family)


def title_of(group: str) -> str:
    return GROUPS[group][0] if group in GROUPS else group


def column_order(group: str, columns: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """The paper's order for a known group (first appearance otherwise, as the suites list them)."""
    if group not in GROUPS:
        return columns
    order = GROUPS[group][1]

    def key(item):
        i, (dataset, metric) = item
        real = real_dataset(dataset)[0]
        rank = METRIC_ORDER.index(metric) if metric in METRIC_ORDER else len(METRIC_ORDER)
        return (order.index(real) if real in order else len(order), rank, i)
    return [c for _, c in sorted(enumerate(columns), key=key)]
