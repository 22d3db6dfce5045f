"""The report's data types: a cell (this run's value, the paper's beside it), a row, a table.

Every cell says what happened: a number (mean ± std and n when several seeds share it, a 95%
interval for a single run), "not run" or "failed", never a blank or a 0 that could be mistaken for
a result. Built by tables.py, annotated by published.py, rendered by html.py and exports.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NOT_RUN, FAILED, INCOMPLETE, UNKNOWN = "not run", "failed", "incomplete", "unknown"
NOT_PUBLISHED = "-"  # a published row without a number for the column (never 0)
UNKNOWN_FAMILY = "unknown"  # eval datasets only ever seen in failed trials: no metric names their task family


@dataclass(frozen=True)
class PaperNote:
    """The paper's number for a run cell (benchmark/report/published.py) and the difference run - paper."""

    value_text: str  # as printed ("37.5"), or the mean of printed numbers for a computed average
    delta: float | None  # run - paper; None when the run has no number for the cell
    refs: tuple[int, ...]  # the footnotes naming the sources (several for an average over tables)
    title: str  # the sources in words, for a tooltip

    @property
    def delta_text(self) -> str:
        if self.delta is None:
            return ""
        text = f"{self.delta:+.1f}"
        return "+0.0" if text == "-0.0" else text

    @property
    def text(self) -> str:
        """'paper 37.5 [1], +0.4': what the exports append to the run's text."""
        refs = "".join(f" [{r}]" for r in self.refs)
        return f"paper {self.value_text}{refs}" + (f", {self.delta_text}" if self.delta is not None else "")


@dataclass
class Cell:
    text: str
    value: float | None = None  # the mean, used to pick the best and to plot
    best: bool = False
    paper: PaperNote | None = None  # the paper's number for the same cell; None: nothing is shown
    interval: tuple[float, float] | None = None  # bootstrap 95% interval of a single run (uncertainty.py)
    title: str = ""  # tooltip: the learning-rate choice and its candidates (selection.py)
    trials: list[str] = field(default_factory=list)  # the trial ids behind the value (drill-down links)
    values: list[float] = field(default_factory=list)  # each seed's value behind the mean (collapse.py reads them)
    flags: list[str] = field(default_factory=list)  # "collapsed: ...", "unstable: ..." (collapse.py), shown as a marker

    @property
    def flag_label(self) -> str:
        """The marker's text: the kind of each flag ("collapsed, unstable"); the reasons go in its tooltip."""
        return ", ".join(f.split(":", 1)[0] for f in self.flags)

    @property
    def flag_title(self) -> str:
        return "; ".join(self.flags)

    @property
    def interval_text(self) -> str:
        return f"95% CI {self.interval[0]:.1f}–{self.interval[1]:.1f}" if self.interval else ""

    @property
    def kind(self) -> str:
        """CSS class: a number, a failure, or a placeholder for something not measured."""
        if self.text == FAILED:
            return "failed"
        return "missing" if self.text in (NOT_RUN, INCOMPLETE, UNKNOWN, NOT_PUBLISHED) else "value"

    @property
    def export_text(self) -> str:
        """The text of the CSV and Markdown copies: the run's value, then the paper's in brackets."""
        text = self.text + (f" [{self.interval[0]:.1f}, {self.interval[1]:.1f}]" if self.interval else "")
        return f"{text} ({self.paper.text})" if self.paper else text


@dataclass
class Row:
    label: str
    model: str
    method_label: str  # "lora (r=8)": what the plot writes beside the marker
    cells: list[Cell]  # one per dataset column, then Average, then Trainable params
    average: float | None
    trainable_params: int | None
    method: str = ""
    kind: str = "run"  # run | paper | baseline (published rows) | chance
    refs: tuple[int, ...] = ()  # footnotes naming the sources of a published row
    title: str = ""  # those sources in words, for a tooltip
    trials: list[str] = field(default_factory=list)  # every trial id of a run row (drill-down links)
    args: dict = field(default_factory=dict)  # a run row's method arguments (the ablation plots sweep them)
    costs: dict = field(default_factory=dict)  # a run row's stored column -> its mean cost (cost.row_costs)

    @property
    def export_label(self) -> str:
        """'GPT-3.5 (baseline) [1]' for a published row; a run's label as it is."""
        if self.kind not in ("paper", "baseline"):
            return self.label
        return f"{self.label} ({self.kind})" + "".join(f" [{r}]" for r in self.refs)


@dataclass
class Table:
    title: str  # the page title: "llm_adapters/math: math", "pt_unipelt/unipelt_lowres: GLUE, K=100"
    columns: list[str]
    rows: list[Row]
    protocols: list[str] = field(default_factory=list)
    reference: list[Row] = field(default_factory=list)  # rows that are not runs: published rows, the chance level
    keys: list[tuple[str, str | None]] = field(default_factory=list)  # (dataset, metric) of each value column
    sources: list[str] = field(default_factory=list)  # footnotes: sources[i] is note [i + 1]
    notes: list[str] = field(default_factory=list)  # how the published numbers were matched
    orientation: list[Row] = field(default_factory=list)  # published rows shown apart (embedded runs)
    orientation_columns: list[str] = field(default_factory=list)
    suite: str = ""
    group: str = ""  # the catalogue table its datasets belong to (suites/datasets.yaml `tables:`)
    k: int | None = None  # low-resource K: only published tables for the same K are compared
    params_note: str = ""  # how the trainable parameters are counted


