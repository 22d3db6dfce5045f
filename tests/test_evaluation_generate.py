"""Batched, cached, masked generation equals the reference one-at-a-time decoding; evaluate() end to end."""

import random

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BloomConfig,
    BloomForCausalLM,
    GPTJConfig,
    GPTJForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from benchmark.data.example import Example
from benchmark.data.prompts import eval_prompt
from benchmark.evaluation import evaluate, generate, generate_reference
from benchmark.evaluation.generate import generate_ids, generate_reference_ids
from benchmark.registry.catalogue import DatasetEntry
from benchmark.registry.spec import EvalConfig

SPECIAL = {"<unk>": 0, "<s>": 1, "</s>": 2}  # pad = <unk> = id 0, as LLM-Adapters sets it


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    # model_input_names: without it the tokenizer returns token_type_ids and generate() rejects them.
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>", padding_side="left",
                                   model_input_names=["input_ids", "attention_mask"])


def word_tokenizer(vocab_size: int = 100) -> PreTrainedTokenizerFast:
    vocab = {**SPECIAL, **{f"w{i}": i + 3 for i in range(vocab_size - 3)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return _wrap(tok)


def bpe_tokenizer(corpus: list[str], vocab_size: int = 300) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    return _wrap(tok)


def tiny_model(family: str, vocab_size: int = 100):
    torch.manual_seed(0)
    ids = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
                                             num_hidden_layers=2, num_attention_heads=4,
                                             max_position_embeddings=512, **ids))
    elif family == "bloom":
        model = BloomForCausalLM(BloomConfig(vocab_size=vocab_size, hidden_size=64, n_layer=2, n_head=4, **ids))
    else:
        model = GPTJForCausalLM(GPTJConfig(vocab_size=vocab_size, n_embd=64, n_layer=2, n_head=4, rotary_dim=16,
                                           n_positions=512, **ids))
    return model.float().eval()


def word_prompts(lengths=(3, 11, 6, 1, 8)) -> list[str]:
    rng = random.Random(0)
    return [" ".join(f"w{rng.randrange(97)}" for _ in range(n)) for n in lengths]


# left padding only works because transformers derives position ids (llama, gptj) or ALiBi
# offsets (bloom) from the attention mask; all three families match token for token in fp32.
@pytest.mark.parametrize("family", ["llama", "bloom", "gptj"])
def test_batched_cached_generation_equals_reference_token_for_token(family):
    model, tok = tiny_model(family), word_tokenizer()
    prompts = word_prompts()  # different lengths, so batches are left-padded
    with torch.inference_mode():
        batched = generate_ids(model, tok, prompts, max_new_tokens=8, num_beams=4, batch_size=3)
        reference = generate_reference_ids(model, tok, prompts, max_new_tokens=8, num_beams=4)
    assert batched == reference
    encoded = [tok(p)["input_ids"] for p in prompts]
    for ids, prompt_ids in zip(batched, encoded):  # original order, prompt kept, no pads left over
        assert ids[:len(prompt_ids)] == prompt_ids
        assert len(prompt_ids) < len(ids) <= len(prompt_ids) + 8


def test_generate_decodes_prompt_and_continuation_in_order():
    model, tok = tiny_model("llama"), word_tokenizer()
    prompts = word_prompts()
    with torch.inference_mode():
        texts = generate(model, tok, prompts, max_new_tokens=4, num_beams=1, batch_size=2)
        reference = generate_reference(model, tok, prompts, max_new_tokens=4, num_beams=1)
    assert texts == reference
    assert all(text.startswith(prompt) for text, prompt in zip(texts, prompts))


def test_evaluate_end_to_end_on_a_tiny_llama():
    entry = DatasetEntry(name="emb-test", format="llm-adapters", path="x.json", family="commonsense",
                         answer="choice", labels=("option1", "option2"), max_new_tokens=5)
    examples = [Example(id=f"emb-test/{i}", instruction=f"Pick the right option for sentence {i}" + " word" * i,
                        input="", output="the correct answer is option1", answer=f"option{1 + i % 2}")
                for i in range(4)]
    prompts = [eval_prompt(ex) for ex in examples]
    tok = bpe_tokenizer(prompts + ["the correct answer is option1", "the correct answer is option2"])
    model = tiny_model("llama", vocab_size=len(tok))
    model.train()  # evaluate must switch to eval mode itself
    metric, predictions, decoding = evaluate(model, tok, entry, examples, EvalConfig(num_beams=2, batch_size=3))
    assert not model.training
    assert decoding == {"num_beams": 2, "max_new_tokens": 5, "batch_size": 3, "do_sample": False,
                        "use_cache": True, "attention_mask": True, "protocol": "llm-adapters"}
    assert (metric.eval_data, metric.family, metric.metric, metric.n_examples) == ("emb-test", "commonsense", "accuracy", 4)
    assert [p.id for p in predictions] == [ex.id for ex in examples]
    assert [p.prompt for p in predictions] == prompts
    assert all(p.gold == ex.answer for p, ex in zip(predictions, examples))
    assert all(p.correct == (p.extracted == p.gold) for p in predictions)
    assert metric.value == pytest.approx(100 * sum(p.correct for p in predictions) / 4)
    # The outputs are the response text only: what follows "### Response:" in prompt + continuation.
    with torch.inference_mode():
        full = generate(model, tok, prompts, max_new_tokens=5, num_beams=2)
    assert [p.output for p in predictions] == [text.split("### Response:", 1)[1].strip() for text in full]
    cfg = EvalConfig(num_beams=1, max_new_tokens=2, batch_size=1, protocol="strict")
    _, _, used = evaluate(model, tok, entry, examples[:1], cfg)
    assert used["max_new_tokens"] == 2 and used["protocol"] == "strict"
