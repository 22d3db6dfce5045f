"""Every embedded training row fits its suite's cutoff_len with its answer: a tokenizer change that lengthens
prompts must fail here, not silently teach the demo to answer nothing (it did once: BoolQ fell below chance)."""

from __future__ import annotations

import pytest

from benchmark.data import load_examples
from benchmark.data.prompts import train_prompt
from benchmark.models import tokenizer as embedded_tokenizer
from benchmark.registry import catalogue, plan


@pytest.mark.parametrize("suite", ["smoke", "llm_adapters/math", "llm_adapters/commonsense"])
def test_embedded_training_rows_fit_the_cutoff(suite):
    tok = embedded_tokenizer.wrap("causal")
    _, specs = plan(suite, embedded=True)
    for train_data, cutoff in sorted({(s.train_data, s.train.cutoff_len) for s in specs}):
        rows = load_examples(catalogue.dataset(train_data), None)
        lengths = [len(tok(train_prompt(ex))["input_ids"]) + 1 for ex in rows]  # + EOS
        too_long = sum(n > cutoff for n in lengths)
        assert too_long <= len(rows) // 100, f"{suite}: {train_data}: {too_long} of {len(rows)} rows exceed {cutoff} tokens"
