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
from benchmark.evaluation import beam, evaluate, generate, generate_reference
from benchmark.evaluation.generate import generate_ids, generate_ids_hf, generate_reference_ids
from benchmark.registry.catalogue import DatasetEntry
from benchmark.registry.spec import EvalConfig, TrainConfig

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
    entry = DatasetEntry(name="emb-test", format="llm-adapters", path="x.json", task_family="commonsense",
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
                        "use_cache": True, "attention_mask": True, "dropout": False, "prompt_template": "evaluation",
                        "protocol": "llm-adapters", "quirks": "llm-adapters"}
    assert (metric.eval_data, metric.task_family, metric.metric, metric.n_examples) == ("emb-test", "commonsense", "accuracy", 4)
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


# ---- the fast path (benchmark/evaluation/beam.py) against the reference, across models and methods ----

def eos_prone(model):
    """Boost the EOS row of the output layer so beams finish at different steps (eviction, early stop)."""
    with torch.no_grad():
        model.get_output_embeddings().weight[2] *= 3.0
    return model


def perturbed(model, method: str):
    """The model with `method` injected and its trainable weights moved off their (often no-op) init."""
    from benchmark import methods

    if method == "none":
        return model
    args = {"num_virtual_tokens": 3} if method in ("prefix", "prompt") else {}
    if method in ("series", "parallel"):
        args = {"bottleneck_size": 8}
    torch.manual_seed(1)
    wrapped = methods.apply(model, method, args)
    with torch.no_grad():
        for p in wrapped.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return wrapped.eval()


def hook_of(method: str):
    """The decode hook the method declares (None for "none" and for methods that only change modules)."""
    from benchmark import methods

    return None if method == "none" else methods.get(method).decode_hook


def reference_for(model, method):
    # peft prefix tuning cannot decode without a cache, so its reference is transformers' generate one prompt at a time.
    if method == "prefix":
        return lambda m, t, p, n, b: generate_ids_hf(m, t, p, n, b, batch_size=1)
    return generate_reference_ids


@pytest.mark.parametrize("family", ["llama", "bloom", "gptj"])
@pytest.mark.parametrize("method", ["none", "lora", "prefix", "prompt", "series"])
def test_fast_beam_search_equals_reference_for_each_family_and_method(family, method):
    model = perturbed(eos_prone(tiny_model(family)), method)
    tok = word_tokenizer()
    prompts = word_prompts((3, 11, 6, 1, 8, 5, 9))
    hook = hook_of(method)
    assert (hook is not None) == (method in ("prefix", "prompt"))
    feeder = beam.Feeder.for_model(model, 10, 4, 0, 2, hook)
    assert feeder is not None and feeder.hook is hook
    with torch.inference_mode():
        ours = generate_ids(model, tok, prompts, max_new_tokens=10, num_beams=4, batch_size=3, decode_hook=hook)
        greedy = generate_ids(model, tok, prompts, max_new_tokens=10, num_beams=1, batch_size=4, decode_hook=hook)
        reference = reference_for(model, method)(model, tok, prompts, 10, 4)
        reference_greedy = reference_for(model, method)(model, tok, prompts, 10, 1)
    assert ours == reference
    assert greedy == reference_greedy


@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_a_prompt_method_without_its_hook_decodes_through_transformers_generate(method):
    # Fed as a plain model it would decode without its virtual tokens: no Feeder, transformers' generate instead.
    model, tok = perturbed(tiny_model("llama"), method), word_tokenizer()
    assert beam.Feeder.for_model(model, 6, 2, 0, 2) is None
    prompts = word_prompts((3, 7))
    with torch.inference_mode():
        assert generate_ids(model, tok, prompts, 6, 2, batch_size=2) == generate_ids_hf(model, tok, prompts, 6, 2)


def test_the_generation_task_decodes_with_the_hook_its_method_declares(monkeypatch):
    from types import SimpleNamespace

    from benchmark.tasks.generation import GenerationTask

    hooks = []
    for_model = beam.Feeder.for_model

    def spy(model, *args):
        hooks.append(args[-1])
        return for_model(model, *args)

    monkeypatch.setattr(beam.Feeder, "for_model", spy)
    entry = DatasetEntry(name="emb-test", format="llm-adapters", path="x.json", task_family="commonsense",
                         answer="choice", labels=("option1", "option2"), max_new_tokens=3)
    examples = [Example(id="emb-test/0", instruction="w5 w7", input="", output="", answer="option1")]
    spec = SimpleNamespace(method="prefix", eval=EvalConfig(num_beams=2, batch_size=1), train=TrainConfig())
    model = perturbed(tiny_model("llama", vocab_size=300), "prefix")
    tok = bpe_tokenizer([eval_prompt(examples[0])])
    GenerationTask().evaluate(model, tok, entry, examples, spec, head=None)
    assert hooks == [hook_of("prefix")] and hooks[0] is not None


def test_fast_path_exercises_eos_and_max_length():
    model, tok = eos_prone(tiny_model("llama")), word_tokenizer()
    prompts = word_prompts((3, 11, 6, 1, 8, 5, 9))
    with torch.inference_mode():
        ours = generate_ids(model, tok, prompts, max_new_tokens=10, num_beams=4, batch_size=7)
    encoded = [tok(p)["input_ids"] for p in prompts]
    ends = [ids[len(e):] for ids, e in zip(ours, encoded)]
    assert any(c and c[-1] == 2 and len(c) < 10 for c in ends)  # some stop at EOS early (evicted)
    assert any(len(c) == 10 and 2 not in c for c in ends)  # some run to max_new_tokens


@pytest.mark.parametrize("early_stopping,length_penalty", [(True, 1.0), ("never", 1.0), ("never", -0.5),
                                                           (False, 2.0), (False, 0.0)])
def test_fast_path_follows_the_generation_config_search_settings(early_stopping, length_penalty):
    model, tok = eos_prone(tiny_model("llama")), word_tokenizer()
    model.generation_config.early_stopping = early_stopping
    model.generation_config.length_penalty = length_penalty
    prompts = word_prompts((3, 11, 6, 1, 8))
    with torch.inference_mode():
        ours = generate_ids(model, tok, prompts, max_new_tokens=9, num_beams=3, batch_size=2)
        reference = generate_reference_ids(model, tok, prompts, max_new_tokens=9, num_beams=3)
    assert ours == reference


def test_logits_processors_fall_back_to_transformers_generate():
    model, tok = tiny_model("llama"), word_tokenizer()
    model.generation_config.repetition_penalty = 1.3
    assert beam.Feeder.for_model(model, 8, 4, 0, 2) is None
    prompts = word_prompts((3, 7))
    with torch.inference_mode():
        assert generate_ids(model, tok, prompts, 6, 2, batch_size=2) == generate_reference_ids(model, tok, prompts, 6, 2)


def test_prompt_token_equal_to_pad_is_masked_as_the_reference_does():
    model, tok = tiny_model("llama"), word_tokenizer()
    prompts = ["w5 w7 nosuchword w9", "w1 w2"]  # the unknown word becomes id 0, the pad id
    assert 0 in tok(prompts[0])["input_ids"]
    with torch.inference_mode():
        assert generate_ids(model, tok, prompts, 6, 4, batch_size=2) == generate_reference_ids(model, tok, prompts, 6, 4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-bloom", "tiny-gptj"])
@pytest.mark.parametrize("method", ["none", "lora", "prefix", "prompt", "series", "parallel"])
def test_fast_path_equals_reference_on_the_pretrained_zoo(name, method):
    from benchmark import models
    from benchmark.data import load_examples
    from benchmark.registry import catalogue

    base, tok = models.load(catalogue.model(name), dtype="float32")
    model = perturbed(base.eval(), method)
    prompts = [eval_prompt(ex) for ex in load_examples(catalogue.dataset("emb-gsm8k"), None)[:6]]
    with torch.inference_mode():
        ours = generate_ids(model, tok, prompts, max_new_tokens=32, num_beams=4, batch_size=4,
                            decode_hook=hook_of(method))
        reference = reference_for(model, method)(model, tok, prompts, 32, 4)
    assert ours == reference


# ---- the decode cache (benchmark/evaluation/kv.py): which layout each model gets, and exactness ----

def _decode_mode(model, num_beams: int) -> str:
    from benchmark.evaluation import kv

    seen = []
    original = kv.DecodeCache.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self.mode)

    kv.DecodeCache.__init__ = spy
    try:
        with torch.inference_mode():
            generate_ids(model, word_tokenizer(), word_prompts((3, 7)), 4, num_beams, batch_size=2)
    finally:
        kv.DecodeCache.__init__ = original
    return seen[0]


def test_each_model_gets_the_decode_cache_it_can_use_and_its_attention_is_restored():
    llama = tiny_model("llama")
    assert _decode_mode(llama, 4) == "shared"  # beams share the prompt; attention through the registry
    assert llama.config._attn_implementation == "sdpa"  # switched only while decoding
    assert _decode_mode(llama, 1) == "buffer"  # greedy: nothing to share
    assert _decode_mode(tiny_model("gptj"), 4) == "buffer"  # its own attention code
    assert _decode_mode(tiny_model("bloom"), 4) == "buffer"


def test_shared_prompt_attention_with_grouped_query_heads_equals_reference():
    torch.manual_seed(0)
    model = eos_prone(LlamaForCausalLM(LlamaConfig(
        vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=2, pad_token_id=0)).eval())
    tok, prompts = word_tokenizer(), word_prompts((3, 11, 6, 1, 8, 5, 9))
    assert _decode_mode(model, 3) == "shared"
    with torch.inference_mode():
        assert generate_ids(model, tok, prompts, 10, 3, batch_size=4) == generate_reference_ids(model, tok, prompts, 10, 3)


@pytest.mark.parametrize("family", ["llama", "gptj"])
def test_decoding_past_the_reserved_cache_slots_equals_reference(family):
    # 40 new tokens > the 32 slots reserved after the prefill: the cache grows while beams keep running.
    model, tok = tiny_model(family), word_tokenizer()
    prompts = word_prompts((3, 9, 5))
    with torch.inference_mode():
        ours = generate_ids(model, tok, prompts, max_new_tokens=40, num_beams=2, batch_size=3)
        reference = generate_reference_ids(model, tok, prompts, max_new_tokens=40, num_beams=2)
    assert ours == reference
    assert max(len(ids) - len(tok(p)["input_ids"]) for ids, p in zip(ours, prompts)) > 32
