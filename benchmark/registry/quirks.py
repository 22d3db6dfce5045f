"""The reference protocols' known defects, each a named switch (a quirk), and the protocols as sets of them.

A quirk is data: its name, the stage it acts in, one line on what it does, and where it was found. Code that
honours a quirk asks `spec.eval.quirk_on(NAME)` (through `EvalConfig`), never a protocol's name. A protocol is a
set of quirks that are on unless a suite switches one (`eval.quirks: {NAME: on|off}`); the switches are part of
the trial id, the protocol's defaults are not restated there (every trial stored before quirks existed keeps its
id and its meaning). The quirk ledger (suites/llm_adapters/quirks.yaml, report/quirks.py) measures each one.

Stages: extraction quirks change only how an answer is read from a stored output (`peft-bench rescore --quirk`
replays them without a model); generation quirks change how outputs are decoded; training quirks change what a
model learns from; selection quirks change which split picks a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGES = ("extraction", "generation", "training", "selection")


@dataclass(frozen=True)
class Quirk:
    name: str
    stage: str  # one of STAGES
    study: str  # the reference protocol it belongs to: llm-adapters | pt-unipelt
    description: str  # what switching it on does, one line
    source: str  # where the defect lives or was reported (docs/protocols/*.md restate it)
    # Protocols that have it on by default. The ones off in `llm-adapters` were off in peft-bench's llm-adapters
    # protocol before quirks were switches; turning them on there would change what stored trials mean.
    on_in: tuple[str, ...] = ()
    # The answer rules (DatasetEntry.answer) of the eval sets it can act on; None: every set of its study.
    acts_on: tuple[str, ...] | None = None


_LLM = "llm-adapters"

QUIRKS: dict[str, Quirk] = {q.name: q for q in (
    Quirk("aqua_first_letter", "extraction", _LLM,
          "a letter answer is the first option letter anywhere in the output (\"Each ...\" answers E)",
          "LLM-Adapters evaluate.py, extract_answer_letter; PR #75 reports about +10 AQuA points with a better rule",
          on_in=(_LLM,), acts_on=("letter",)),
    Quirk("first_match_choice", "extraction", _LLM,
          "a choice answer is the first label anywhere in the output, even inside a word",
          "LLM-Adapters commonsense_evaluate.py, extract_answer", on_in=(_LLM,), acts_on=("choice",)),
    Quirk("last_number", "extraction", _LLM,
          "a number answer is the last number of the output, even one written after the stated answer",
          "LLM-Adapters evaluate.py, extract_answer_number (mawps, which the script has no rule for, is read the "
          "same way: docs/protocols/llm-adapters.md)", on_in=(_LLM,), acts_on=("number",)),
    Quirk("dropout_at_eval", "generation", _LLM,
          "decoding runs in training mode, so the adapters' dropout stays on (draws seeded by the trial's seed)",
          "LLM-Adapters evaluate.py and commonsense_evaluate.py call model.eval() only on the CPU path"),
    Quirk("no_attention_mask", "generation", _LLM,
          "choice sets decode in the data's order in batches of eval.batch_size, left-padded rows attending to "
          "their pads (no attention mask)",
          "LLM-Adapters commonsense_evaluate.py; issues #61 (garbage rows) and #64 (larger batches score lower)",
          acts_on=("choice",)),
    Quirk("template_whitespace", "generation", _LLM,
          "evaluation prompts use the evaluation template, whose whitespace differs from the training template's "
          "(off: the training template's prompt)",
          "LLM-Adapters finetune.py vs evaluate.py / commonsense_evaluate.py generate_prompt", on_in=(_LLM,)),
    Quirk("no_eos_when_truncated", "training", _LLM,
          "a training example cut at cutoff_len gets no EOS (off: its last token becomes EOS)",
          "LLM-Adapters finetune.py, tokenize(add_eos_token=True)", on_in=(_LLM,)),
    Quirk("train_on_inputs", "training", _LLM,
          "the loss covers the prompt too, not only the response (off: prompt positions are masked; when not "
          "switched, train.train_on_inputs decides under a protocol that has it)",
          "LLM-Adapters finetune.py --train_on_inputs (default True); about 1 LoRA point elsewhere (hira#7)",
          on_in=(_LLM,)),
    Quirk("select_on_reported_set", "selection", "pt-unipelt",
          "early stopping and the learning-rate search select on the set the number is reported on (the first "
          "eval set), not on a split held out of training",
          "UniPELT Table 3 / PT+UniPELT high-resource tables: best GLUE dev result, reported on GLUE dev",
          on_in=("pt-unipelt",)),
)}

# peft-bench's protocols: each reference protocol (its study's quirks on as listed) and `strict` (none).
PROTOCOLS = ("llm-adapters", "pt-unipelt", "strict")

_ON = {"on": True, "off": False, True: True, False: False}


def parse_switches(value, field: str = "eval.quirks") -> dict[str, bool]:
    """{name: on|off} (YAML reads on/off as booleans; either spelling) -> {name: bool}; unknown names and values
    raise ValueError naming the field and what is allowed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{field}: got {value!r}; allowed: a mapping of quirk names to on or off "
                         f"(quirks: {', '.join(QUIRKS)})")
    switches = {}
    for name, state in value.items():
        if name not in QUIRKS:
            raise ValueError(f"{field}.{name}: unknown quirk; allowed: {', '.join(QUIRKS)}")
        key = state.lower() if isinstance(state, str) else state
        if isinstance(key, (bool, str)) and key in _ON:
            switches[name] = _ON[key]
        else:
            raise ValueError(f"{field}.{name}: got {state!r}; allowed: on, off")
    return dict(sorted(switches.items()))


def default_on(protocol: str, name: str) -> bool:
    return protocol in QUIRKS[name].on_in


def is_on(protocol: str, switches: dict[str, bool], name: str) -> bool:
    """Whether quirk `name` acts under `protocol` with these switches."""
    if name not in QUIRKS:
        raise KeyError(f"unknown quirk {name!r}; known: {', '.join(QUIRKS)}")
    return switches.get(name, default_on(protocol, name))


def acts_on(name: str, answer_rule: str | None) -> bool:
    """Whether quirk `name` can change anything on an eval set with this answer rule (DatasetEntry.answer)."""
    rules = QUIRKS[name].acts_on
    return rules is None or answer_rule in rules


def label(protocol: str, switches: dict[str, bool]) -> str:
    """A protocol with switches, as one string ("llm-adapters", "llm-adapters.aqua_first_letter-off"): the key of
    rescored and re-evaluated records (a file name, also on object stores: only characters safe in any key) and of
    report columns. Switches equal to the protocol's default are dropped."""
    changed = {n: v for n, v in sorted(switches.items()) if v != default_on(protocol, n)}
    return protocol + "".join(f".{n}-{'on' if v else 'off'}" for n, v in changed.items())


def parse_label(text: str) -> tuple[str, dict[str, bool]]:
    """label()'s inverse: (protocol, switches). ValueError on an unknown protocol or quirk."""
    protocol, *parts = text.split(".")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: got {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
    switches = {}
    for part in parts:
        name, _, state = part.rpartition("-")
        switches.update(parse_switches({name: state}, field="protocol label"))
    return protocol, switches


def replay(protocol: str, switches: dict[str, bool], target: str, target_switches: dict[str, bool],
           stages: tuple[str, ...]) -> dict[str, bool]:
    """The switches, against the trial's own `protocol`, of a trial re-read under (`target`, `target_switches`) for
    the quirks of `stages` only: the other quirks (what trained it, how its outputs were decoded when only
    extraction is redone) keep the trial's state. Label the record with label(protocol, result): it then says what
    actually produced it."""
    states = {q.name: is_on(protocol, switches, q.name) for q in QUIRKS.values()}
    for q in QUIRKS.values():
        if q.stage in stages:
            states[q.name] = is_on(target, target_switches, q.name)
    return {n: v for n, v in states.items() if v != default_on(protocol, n)}


def of_stage(stage: str) -> list[Quirk]:
    return [q for q in QUIRKS.values() if q.stage == stage]
