"""The LLM-Adapters prompt templates and training tokenisation, exactly as the reference has them.

Training (finetune.py) and evaluation (evaluate.py, commonsense_evaluate.py) use different
templates: the training header without input ends with two spaces and its blank lines hold 16
spaces; the evaluation header ends with one space and its blank lines are empty. Models trained
with one and evaluated with the other is the published protocol, so both are kept verbatim.
"""

from __future__ import annotations

from benchmark.data.example import Example

_INDENT = " " * 16

TRAIN_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n"
    f"{_INDENT}### Instruction:\n{_INDENT}{{instruction}}\n{_INDENT}\n{_INDENT}### Response:\n{_INDENT}{{output}}"
)
TRAIN_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request. \n\n"
    f"{_INDENT}### Instruction:\n{_INDENT}{{instruction}}\n{_INDENT}\n"
    f"{_INDENT}### Input:\n{_INDENT}{{input}}\n{_INDENT}\n{_INDENT}### Response:\n{_INDENT}{{output}}"
)
EVAL_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n"
    f"{_INDENT}### Instruction:\n{_INDENT}{{instruction}}\n\n{_INDENT}### Response:\n{_INDENT}"
)
EVAL_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    f"{_INDENT}### Instruction:\n{_INDENT}{{instruction}}\n\n"
    f"{_INDENT}### Input:\n{_INDENT}{{input}}\n\n{_INDENT}### Response:\n{_INDENT}"
)

RESPONSE_MARKER = "### Response:"


def train_prompt(ex: Example, with_output: bool = True) -> str:
    """finetune.py's generate_prompt; with_output=False gives the user prompt used for masking."""
    template = TRAIN_WITH_INPUT if ex.input else TRAIN_NO_INPUT
    return template.format(instruction=ex.instruction, input=ex.input, output=ex.output if with_output else "")


def eval_prompt(ex: Example, reference_template: bool = True) -> str:
    """evaluate.py / commonsense_evaluate.py's generate_prompt (no output); reference_template=False (the
    template_whitespace quirk off): the training template's prompt, so the model is asked as it was taught."""
    if not reference_template:
        return train_prompt(ex, with_output=False)
    template = EVAL_WITH_INPUT if ex.input else EVAL_NO_INPUT
    return template.format(instruction=ex.instruction, input=ex.input)


def response_text(decoded: str) -> str:
    """The text after the first '### Response:', stripped (both evaluation scripts)."""
    parts = decoded.split(RESPONSE_MARKER, 1)
    return (parts[1] if len(parts) > 1 else parts[0]).strip()


def _tokenize(tokenizer, text: str, cutoff_len: int, add_eos: bool, eos_when_truncated: bool = False) -> list[int]:
    ids = tokenizer(text, truncation=True, max_length=cutoff_len, padding=False)["input_ids"]
    ids = list(ids)
    if add_eos and ids and ids[-1] != tokenizer.eos_token_id:
        if len(ids) < cutoff_len:  # finetune.py: EOS only when the sequence was not truncated ...
            ids.append(tokenizer.eos_token_id)
        elif eos_when_truncated:  # ... unless the no_eos_when_truncated quirk is off: the cut row ends in EOS too
            ids[-1] = tokenizer.eos_token_id
    elif add_eos and not ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def tokenize_for_training(tokenizer, ex: Example, cutoff_len: int, train_on_inputs: bool,
                          eos_when_truncated: bool = False) -> dict:
    """input_ids and labels for one example; labels = input_ids, prompt masked with -100 unless train_on_inputs.

    The first token is never a target (-100 whatever train_on_inputs). Nothing in the example comes
    before it; finetune.py keeps it, and then under left padding every row but the longest learns
    to predict it from a pad token, so an example's loss depended on its batchmates' lengths. Unpadded,
    the causal shift drops it anyway, so this changes nothing there.
    `eos_when_truncated`: the no_eos_when_truncated quirk off (registry/quirks.py)."""
    input_ids = _tokenize(tokenizer, train_prompt(ex), cutoff_len, add_eos=True, eos_when_truncated=eos_when_truncated)
    labels = [-100] * min(1, len(input_ids)) + input_ids[1:]
    if not train_on_inputs:
        prompt_len = len(_tokenize(tokenizer, train_prompt(ex, with_output=False), cutoff_len, add_eos=False))
        # min(): a subword merge across the prompt/output boundary can make the prompt alone one
        # token longer than its share of the full text; labels must stay as long as input_ids.
        prompt_len = min(prompt_len, len(input_ids))
        labels = [-100] * prompt_len + labels[prompt_len:]
    return {"input_ids": input_ids, "labels": labels}
