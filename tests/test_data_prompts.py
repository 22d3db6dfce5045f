"""The LLM-Adapters prompt templates, character for character, and finetune.py's tokenisation rules."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from benchmark.data.example import Example
from benchmark.data.prompts import eval_prompt, response_text, tokenize_for_training, train_prompt

EX = Example(id="t/0", instruction="Add 2 and 3.", input="", output="2 + 3 = 5. The answer is 5", answer="5.0")
EX_INPUT = Example(id="t/1", instruction="Add them.", input="2 and 3", output="5", answer="5.0")
PAD = " " * 16


def test_train_prompt_without_input_is_the_reference_string():
    expected = ("Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n"
                "                ### Instruction:\n                Add 2 and 3.\n                \n"
                "                ### Response:\n                2 + 3 = 5. The answer is 5")
    assert train_prompt(EX) == expected
    assert train_prompt(EX, with_output=False) == expected[: -len(EX.output)]


def test_train_prompt_with_input_is_the_reference_string():
    expected = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request. \n\n"
                "                ### Instruction:\n                Add them.\n                \n"
                "                ### Input:\n                2 and 3\n                \n"
                "                ### Response:\n                5")
    assert train_prompt(EX_INPUT) == expected


def test_eval_prompts_are_the_reference_strings():
    assert eval_prompt(EX) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n"
        "                ### Instruction:\n                Add 2 and 3.\n\n"
        "                ### Response:\n                ")
    assert eval_prompt(EX_INPUT) == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "                ### Instruction:\n                Add them.\n\n"
        "                ### Input:\n                2 and 3\n\n"
        "                ### Response:\n                ")


def test_response_text_keeps_what_follows_the_first_marker():
    assert response_text(eval_prompt(EX) + " the answer is 5 ### Response: junk") == "the answer is 5 ### Response: junk"


@pytest.fixture(scope="module")
def tokenizer():
    words = sorted({w for text in (train_prompt(EX), train_prompt(EX_INPUT)) for w in text.split()})
    vocab = {"<pad>": 0, "<unk>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>",
                                   model_input_names=["input_ids", "attention_mask"])


def test_training_features_end_with_eos_and_train_on_inputs_keeps_every_label_but_the_first(tokenizer):
    plain = tokenizer(train_prompt(EX))["input_ids"]
    feats = tokenize_for_training(tokenizer, EX, cutoff_len=256, train_on_inputs=True)
    assert feats["input_ids"] == plain + [tokenizer.eos_token_id]
    # every label but the first: nothing in the example precedes it (see tokenize_for_training)
    assert feats["labels"] == [-100] + feats["input_ids"][1:]


def test_prompt_positions_are_masked_without_train_on_inputs(tokenizer):
    prompt_len = len(tokenizer(train_prompt(EX, with_output=False))["input_ids"])
    feats = tokenize_for_training(tokenizer, EX, cutoff_len=256, train_on_inputs=False)
    assert feats["labels"][:prompt_len] == [-100] * prompt_len
    assert feats["labels"][prompt_len:] == feats["input_ids"][prompt_len:]
    assert feats["labels"][-1] == tokenizer.eos_token_id and len(feats["labels"]) == len(feats["input_ids"])


def test_truncated_examples_get_no_eos(tokenizer):
    feats = tokenize_for_training(tokenizer, EX, cutoff_len=10, train_on_inputs=False)
    assert len(feats["input_ids"]) == 10 and tokenizer.eos_token_id not in feats["input_ids"]
    assert feats["labels"] == [-100] * 10  # the prompt alone fills the cutoff


def test_an_existing_final_eos_is_not_doubled(tokenizer):
    ex = Example(id="t/2", instruction="Add 2 and 3.", input="", output="5 </s>", answer="5.0")
    ids = tokenize_for_training(tokenizer, ex, cutoff_len=256, train_on_inputs=True)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id and ids[-2] != tokenizer.eos_token_id
