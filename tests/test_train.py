"""The lean training loop: collation, batching, schedule, accumulation, loss, NaN guard."""

import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from torch.optim.optimizer import register_optimizer_step_pre_hook
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from benchmark.registry.spec import TrainConfig
from benchmark.train import TrainStats, train
from benchmark.train.batching import length_grouped_batches, packed_rows, padding_tokens, plain_batches
from benchmark.train.collate import collate, count_loss_tokens
from benchmark.train.loop import linear_schedule, split_validation, total_optimizer_steps

VOCAB = 64


def tiny_tokenizer():
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(VOCAB - 3)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>", padding_side="left",
                                   model_input_names=["input_ids", "attention_mask"])


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0)
    return LlamaForCausalLM(config)


def features(lengths, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = [1] + torch.randint(3, VOCAB, (n - 2,), generator=gen).tolist() + [2]
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


# ---- collator ----

def test_collator_pads_left_to_multiple_of_8_with_ignored_labels():
    batch = collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                     {"input_ids": [1, 2, 3, 4, 5, 6, 7, 8, 9], "labels": [1, 2, 3, 4, 5, 6, 7, 8, 9]}], pad_token_id=0)
    assert batch["input_ids"].shape == (2, 16)
    assert batch["input_ids"][0].tolist() == [0] * 13 + [5, 6, 7]
    assert batch["labels"][0].tolist() == [-100] * 14 + [6, 7]
    assert batch["attention_mask"][0].tolist() == [0] * 13 + [1] * 3
    assert batch["attention_mask"][1].sum() == 9
    # HF shifts labels left by one: only the very first column never counts, a pad column here.
    assert count_loss_tokens(batch["labels"]) == 2 + 9


def test_collator_right_side_and_exact_multiple():
    batch = collate([{"input_ids": list(range(1, 9)), "labels": list(range(1, 9))},
                     {"input_ids": [4], "labels": [4]}], pad_token_id=0, padding_side="right")
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"][1].tolist() == [4] + [0] * 7
    assert batch["labels"][1].tolist() == [4] + [-100] * 7
    with pytest.raises(ValueError, match="padding_side"):
        collate([{"input_ids": [1], "labels": [1]}], padding_side="middle")


# ---- batching ----

def test_length_grouping_cuts_padding_and_covers_every_example_once():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 250, (2000,), generator=gen).tolist()
    grouped = length_grouped_batches(lengths, 4, torch.Generator().manual_seed(1))
    plain = plain_batches(len(lengths), 4, torch.Generator().manual_seed(1))
    for batches in (grouped, plain):
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(len(b) <= 4 for b in batches)
    assert padding_tokens(grouped, lengths) < 0.25 * padding_tokens(plain, lengths)
    assert max(lengths[i] for i in grouped[0]) == max(lengths)  # longest first: OOM shows at step 1


def test_batching_is_seeded():
    lengths = list(range(10, 110))
    a = length_grouped_batches(lengths, 4, torch.Generator().manual_seed(3))
    b = length_grouped_batches(lengths, 4, torch.Generator().manual_seed(3))
    c = length_grouped_batches(lengths, 4, torch.Generator().manual_seed(4))
    assert a == b and a != c


def test_packed_rows_fill_the_budget_in_order_and_feed_every_example_once():
    lengths = torch.randint(5, 120, (300,), generator=torch.Generator().manual_seed(0)).tolist()
    step = torch.randperm(300, generator=torch.Generator().manual_seed(1))[:64].tolist()
    budget = 4 * 128

    def tokens(row):
        return sum(lengths[i] for i in row)

    rows = packed_rows(step, lengths, budget)
    assert [i for row in rows for i in row] == step  # every example once, in the step's order
    assert all(tokens(row) <= budget for row in rows)
    assert all(tokens(a + b[:1]) > budget for a, b in zip(rows, rows[1:]))  # a row ends only when full
    assert len(rows) < 64 / 4  # fewer than the reference's micro-batches of 4


def test_packed_rows_take_an_example_longer_than_the_budget_alone():
    assert packed_rows([0, 1, 2], [300, 10, 10], 256) == [[0], [1, 2]]
    assert packed_rows([1, 0, 2], [300, 10, 10], 256) == [[1], [0], [2]]
    with pytest.raises(ValueError, match="budget"):
        packed_rows([0], [5], 0)


# ---- schedule and split ----

def test_linear_warmup_then_decay_to_zero():
    f = linear_schedule(warmup_steps=10, total_steps=110)
    assert f(0) == 0 and f(5) == 0.5 and f(10) == 1.0 and f(60) == 0.5 and f(110) == 0.0 and f(200) == 0.0


def test_total_steps_from_epochs_and_max_steps():
    cfg = TrainConfig(epochs=3, batch_size=16, micro_batch_size=4)
    assert total_optimizer_steps(100, cfg) == 3 * math.ceil(25 / 4)
    assert total_optimizer_steps(100, TrainConfig(epochs=3, batch_size=16, micro_batch_size=4, max_steps=2)) == 2


def test_validation_split_is_seeded_and_disjoint():
    feats = features([6] * 20)
    train_a, val_a = split_validation(feats, 5, seed=42)
    train_b, val_b = split_validation(feats, 5, seed=42)
    assert len(train_a) == 15 and len(val_a) == 5 and val_a == val_b and train_a == train_b
    with pytest.raises(ValueError, match="val_set_size"):
        split_validation(feats, 20, seed=42)


# ---- the loop ----

def test_loss_decreases_when_memorising_a_few_sequences():
    model, tok = tiny_llama(), tiny_tokenizer()
    cfg = TrainConfig(epochs=1, batch_size=4, micro_batch_size=2, learning_rate=1e-2, warmup_steps=2,
                      max_steps=30, group_by_length=False)
    stats = train(model, tok, features([12, 9, 15, 7]), cfg, log_every=5)
    assert isinstance(stats, TrainStats)
    assert stats.steps == 30 and [s for s, _ in stats.loss_history] == [5, 10, 15, 20, 25, 30]
    first, last = stats.loss_history[0][1], stats.loss_history[-1][1]
    assert last < 0.5 * first, stats.loss_history
    assert stats.final_loss == pytest.approx(last)
    assert stats.tokens == 30 * (12 + 9 + 15 + 7) and stats.tokens_per_s > 0
    assert not model.training


@pytest.mark.parametrize("loop", ["reference", "packed", "grouped"])
def test_gradient_accumulation_matches_one_big_batch(loop):
    """However a step's examples are split into forwards (padded: the micro-batches; packed: as few rows
    as fit in micro_batch_size x cutoff_len tokens), the update is the one big batch's."""
    feats = features([5, 9, 13, 6, 11, 7, 16, 8])  # unequal label counts per micro-batch
    flags = {"reference": {"packing": False, "group_by_length": False}, "packed": {},
             "grouped": {"packing": False}}[loop]
    params, forwards = {}, {}
    for micro in (4, 8, 2):
        model = tiny_llama()
        cfg = TrainConfig(epochs=1, batch_size=8, micro_batch_size=micro, learning_rate=1e-3, warmup_steps=0,
                          max_steps=1, cutoff_len=16, **flags)
        stats = train(model, tiny_tokenizer(), feats, cfg)
        assert stats.packed == (loop == "packed")
        params[micro], forwards[micro] = torch.cat([p.detach().flatten() for p in model.parameters()]), stats.forwards
    moved = (params[8] - torch.cat([p.detach().flatten() for p in tiny_llama().parameters()])).abs().max()
    assert moved > 5e-4  # the step did something (Adam's first step moves ~lr)
    assert (params[4] - params[8]).abs().max() < 1e-5
    assert (params[2] - params[8]).abs().max() < 1e-5
    if loop == "packed":  # 75 tokens in rows of at most 2, 4 and 8 x 16 tokens
        assert forwards == {2: 3, 4: 2, 8: 1}
    else:  # padded micro-batches run as they come
        assert forwards == {2: 4, 4: 2, 8: 1}


def test_training_is_deterministic_under_a_seed():
    feats = features([5, 9, 13, 6, 11, 7])
    cfg = TrainConfig(epochs=1, batch_size=4, micro_batch_size=2, learning_rate=1e-3, warmup_steps=1, max_steps=3)
    runs = []
    for _ in range(2):
        model = tiny_llama()
        stats = train(model, tiny_tokenizer(), feats, cfg)
        runs.append((stats.loss_history, torch.cat([p.detach().flatten() for p in model.parameters()])))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_only_trainable_parameters_change():
    model = tiny_llama()
    for name, p in model.named_parameters():
        p.requires_grad = "lm_head" in name
    frozen_before = model.model.embed_tokens.weight.detach().clone()
    head_before = model.lm_head.weight.detach().clone()
    cfg = TrainConfig(epochs=1, batch_size=2, micro_batch_size=2, learning_rate=1e-2, warmup_steps=0, max_steps=2)
    train(model, tiny_tokenizer(), features([6, 8]), cfg)
    assert torch.equal(model.model.embed_tokens.weight, frozen_before)
    assert not torch.equal(model.lm_head.weight, head_before)


def test_validation_loss_reported():
    cfg = TrainConfig(epochs=1, batch_size=2, micro_batch_size=2, warmup_steps=0, max_steps=2, val_set_size=2)
    stats = train(tiny_llama(), tiny_tokenizer(), features([6, 8, 7, 9, 10, 5]), cfg)
    assert stats.val_examples == 2 and stats.train_examples == 4
    assert stats.val_loss is not None and math.isfinite(stats.val_loss)


def test_non_finite_loss_raises_naming_the_step():
    model = tiny_llama()
    calls = {"n": 0}

    def poison_third_call(_module, _inputs, output):
        # Real model, real loss: corrupt the logits of the third training forward pass only (the packing
        # probe's forwards run in eval mode before training).
        if not _module.training:
            return None
        calls["n"] += 1
        if calls["n"] == 3:
            return output * float("nan")

    model.lm_head.register_forward_hook(poison_third_call)
    cfg = TrainConfig(epochs=5, batch_size=2, micro_batch_size=2, warmup_steps=0, max_steps=5)
    with pytest.raises(FloatingPointError, match="non-finite loss at step 3"):
        train(model, tiny_tokenizer(), features([6, 8, 7, 9]), cfg)
    assert not model.training


def test_clipping_bounds_the_global_gradient_norm_at_the_optimizer_step():
    assert TrainConfig().max_grad_norm == 1.0  # transformers.TrainingArguments' default, kept by finetune.py
    with pytest.raises(ValueError, match="train.max_grad_norm"):
        TrainConfig(max_grad_norm=0)
    norms = {}
    for clip in (None, 0.05):
        model = tiny_llama()
        params = list(model.parameters())

        def capture(_optimizer, _args, _kwargs, params=params, clip=clip):
            norms[clip] = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))

        handle = register_optimizer_step_pre_hook(capture)
        try:
            cfg = TrainConfig(epochs=1, batch_size=4, micro_batch_size=4, learning_rate=1e-3, warmup_steps=0,
                              max_steps=1, max_grad_norm=clip)
            train(model, tiny_tokenizer(), features([6, 8, 7, 9]), cfg)
        finally:
            handle.remove()
    assert norms[None] > 0.1  # the raw gradient is larger than the bound
    assert norms[0.05] == pytest.approx(0.05, rel=1e-4)


# ---- dev selection through the metric table ----

def test_dev_selection_keeps_the_best_epoch_in_the_metric_direction():
    from dataclasses import replace

    from benchmark import metrics

    feats = features([5, 9, 13, 6])
    cfg = TrainConfig(epochs=3, batch_size=4, micro_batch_size=4, learning_rate=1e-3, warmup_steps=0,
                      early_stopping_patience=5)
    scores = iter([50.0, 70.0, 60.0, 50.0, 70.0, 60.0])
    higher = train(tiny_llama(), tiny_tokenizer(), feats, cfg, dev_score=lambda m: next(scores),
                   dev_metric=metrics.get("accuracy"))
    lower_is_better = replace(metrics.get("accuracy"), higher_is_better=False)  # as an error rate would be
    lower = train(tiny_llama(), tiny_tokenizer(), feats, cfg, dev_score=lambda m: next(scores), dev_metric=lower_is_better)
    assert (higher.best_epoch, higher.best_dev) == (2, 70.0) and (lower.best_epoch, lower.best_dev) == (1, 50.0)
    with pytest.raises(ValueError, match="dev_metric"):
        train(tiny_llama(), tiny_tokenizer(), feats, cfg, dev_score=lambda m: 1.0)
