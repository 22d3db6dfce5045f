"""Packed micro-batches: boundaries, equality with padding (logits, loss, gradients), the probe, the loop."""

import pytest
import torch
from transformers import GPTJConfig, GPTJForCausalLM, LlamaConfig, LlamaForCausalLM

from benchmark.registry.spec import TrainConfig
from benchmark.train import train
from benchmark.train.collate import IGNORE_INDEX, collate
from benchmark.train.packing import pack, packed_attention, packed_forward, packing_matches, segment_lengths
from tests.test_train import VOCAB, features, tiny_tokenizer


def llama(kv_heads=4, seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=128,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(config).eval()


def test_pack_lays_examples_side_by_side_with_restarting_positions():
    feats = [{"input_ids": [1, 5, 6], "labels": [1, 5, 6]}, {"input_ids": [1, 7], "labels": [-100, 7]}]
    batch = pack(feats, pad_token_id=0)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 1, 7, 0, 0, 0]]  # padded to a multiple of 8
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]  # the padding is a segment of its own
    # an example's first token is never a target: nothing of its own precedes it
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 5, 6, IGNORE_INDEX, 7] + [IGNORE_INDEX] * 3]
    assert segment_lengths(batch["position_ids"]) == [3, 2, 3]


def test_pack_rejects_bad_features():
    with pytest.raises(ValueError, match="features is empty"):
        pack([])
    with pytest.raises(ValueError, match="differ in length"):
        pack([{"input_ids": [1, 2], "labels": [1]}])
    with pytest.raises(ValueError, match="no tokens"):
        pack([{"input_ids": [], "labels": []}])


@pytest.mark.parametrize("kv_heads", [4, 2])  # multi-head and grouped-query attention
def test_packed_logits_equal_each_example_alone(kv_heads):
    model = llama(kv_heads)
    feats = features([7, 12, 5, 9])
    batch = pack(feats)
    with torch.no_grad(), packed_forward(model):
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
    start = 0
    for f in feats:
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([f["input_ids"]])).logits[0]
        n = len(f["input_ids"])
        torch.testing.assert_close(logits[0, start:start + n], alone, atol=1e-5, rtol=1e-5)
        start += n
    assert model.config._attn_implementation == "sdpa"  # switched back after the block


def test_packed_loss_and_gradients_equal_padding():
    feats = features([7, 12, 5, 9, 15])
    grads = {}
    for kind in ("padded", "packed"):
        model = llama().train()
        if kind == "padded":
            loss = model(**collate(feats, 0, "right")).loss
            loss.backward()
        else:
            with packed_forward(model):
                loss = model(**pack(feats)).loss
                loss.backward()
        grads[kind] = (loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert grads["packed"][0] == pytest.approx(grads["padded"][0], rel=1e-5)
    torch.testing.assert_close(grads["packed"][1], grads["padded"][1], atol=1e-5, rtol=1e-4)


def test_packed_attention_refuses_anything_but_a_packed_row():
    model = llama()
    q = torch.zeros(1, 4, 8, 8)
    with pytest.raises(RuntimeError, match="position_ids"):
        packed_attention(model.model.layers[0].self_attn, q, q, q, attention_mask=None)
    with pytest.raises(RuntimeError, match="no attention mask"):
        packed_attention(model.model.layers[0].self_attn, q, q, q, attention_mask=torch.ones(1, 1, 8, 8, dtype=bool),
                         position_ids=torch.arange(8)[None])
    with pytest.raises(ValueError, match="start at 0"):
        segment_lengths(torch.tensor([[1, 2, 0]]))


def test_the_probe_accepts_llama_and_refuses_models_or_methods_that_break_packing():
    feats = features([7, 12, 5])
    assert packing_matches(llama(), feats, 0, "right", "cpu")
    torch.manual_seed(0)
    gptj = GPTJForCausalLM(GPTJConfig(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=128))
    assert not packing_matches(gptj, feats, 0, "right", "cpu")  # its attention is not transformers' registry's

    import peft

    prompt = peft.get_peft_model(llama(), peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert not packing_matches(prompt, feats, 0, "right", "cpu")  # virtual tokens prepended to the row
    assert prompt.get_base_model().config._attn_implementation == "sdpa"


def test_the_loop_packs_by_default_and_matches_the_padded_loop():
    feats = features([5, 9, 13, 6, 11, 7, 16, 8, 10, 12])
    results = {}
    for packing in (True, False):
        cfg = TrainConfig(epochs=1, batch_size=4, micro_batch_size=4, learning_rate=1e-3, warmup_steps=0,
                          max_steps=4, group_by_length=False, packing=packing)
        model = llama().train()
        stats = train(model, tiny_tokenizer(), feats, cfg, log_every=1)
        results[packing] = (stats, torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert results[True][0].packed and not results[False][0].packed
    assert results[True][0].tokens == results[False][0].tokens  # non-pad tokens either way
    for (_, a), (_, b) in zip(results[True][0].loss_history, results[False][0].loss_history):
        assert a == pytest.approx(b, rel=1e-4)
    torch.testing.assert_close(results[True][1], results[False][1], atol=1e-5, rtol=1e-4)
    assert TrainConfig().packing is True


@pytest.mark.parametrize("packing", [True, False])
def test_gradient_checkpointing_changes_memory_not_results(packing):
    feats = features([5, 9, 13, 6, 11, 7])
    outcome = []
    for checkpointing in (False, True):
        cfg = TrainConfig(epochs=1, batch_size=3, micro_batch_size=3, learning_rate=1e-3, warmup_steps=0,
                          max_steps=2, packing=packing, gradient_checkpointing=checkpointing)
        model = llama().train()
        stats = train(model, tiny_tokenizer(), feats, cfg, log_every=1)
        assert stats.packed is packing
        outcome.append((stats.loss_history, torch.cat([p.detach().flatten() for p in model.parameters()])))
        assert not model.is_gradient_checkpointing  # switched off again after training
    assert [round(v, 5) for _, v in outcome[0][0]] == [round(v, 5) for _, v in outcome[1][0]]
    torch.testing.assert_close(outcome[0][1], outcome[1][1], atol=1e-6, rtol=1e-5)


def test_gradient_checkpointing_on_a_model_without_it_names_the_field():
    class NoCheckpointing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

    cfg = TrainConfig(epochs=1, batch_size=1, micro_batch_size=1, warmup_steps=0, max_steps=1,
                      gradient_checkpointing=True, packing=False)
    with pytest.raises(ValueError, match="train.gradient_checkpointing"):
        train(NoCheckpointing(), tiny_tokenizer(), features([5]), cfg)


def test_prefix_tuning_with_gradient_checkpointing_trains_its_prefix():
    """transformers' checkpointed layers drop the cache in training, and prefix tuning's virtual key/values are that
    cache: checkpointing is left off for it (LLM-Adapters' LLaMA-13B commands ask for it on every method)."""
    from benchmark import methods

    feats = features([9, 12, 7, 10])
    runs = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = methods.apply(llama(), "prefix", {"num_virtual_tokens": 3})
        cfg = TrainConfig(epochs=1, batch_size=2, micro_batch_size=2, warmup_steps=0, max_steps=2,
                          learning_rate=1e-2, gradient_checkpointing=checkpointing)
        runs.append(train(model, tiny_tokenizer(), feats, cfg, log_every=1).loss_history)
    assert runs[0] == runs[1]
