"""Co-training (benchmark/train/cotrain.py): a group's members get the numbers they get alone.

float64, dropout 0: every member's loss at every step and its trained parameters equal a solo run of the same trial,
for every co-trainable method in one mixed group of 8, on the llama, bloom and gptj families. Where transformers
itself computes part of a model in float32 whatever its dtype (BLOOM's attention softmax, GPT-J's attention scores
and logits), results can only agree to float32 rounding when the group's padded width differs from a solo
micro-batch's; with examples of one length (same widths) they agree as float64 does, except GPT-J's losses, whose
float32 logits are summed in another order.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from benchmark import methods
from benchmark.registry.spec import TrainConfig
from benchmark.train import train
from benchmark.train.cotrain import Member, train_group
from benchmark.train.routing import CannotCoTrain, sharing_copy
from tests.test_methods import tiny_model
from tests.test_train import features, tiny_tokenizer

# Every co-trainable method, and a second LoRA with another rank: (method, args, seed).
MIXED = [("lora", {"dropout": 0.0}, 1), ("series", {"bottleneck_size": 8}, 2), ("prefix", {"num_virtual_tokens": 3}, 3),
         ("ia3", {}, 4), ("dora", {"dropout": 0.0}, 5), ("parallel", {"bottleneck_size": 8}, 6),
         ("adapterp", {"bottleneck_size": 8}, 7), ("lora", {"dropout": 0.0, "r": 4}, 8)]
# (loss, parameter) tolerances, relative: float64 unless the family computes in float32 (module docstring).
TOLERANCE = {("llama", "mixed"): (1e-9, 1e-7), ("bloom", "mixed"): (1e-9, 1e-6), ("gptj", "mixed"): (1e-6, 1e-5),
             ("bloom", "equal"): (1e-9, 1e-7), ("gptj", "equal"): (1e-6, 1e-7)}


def co_trainable() -> set[str]:
    return {name for name in methods.names() if methods.get(name).co_trains}


def test_every_co_trainable_method_is_in_the_mixed_group():
    assert co_trainable() == {m for m, _, _ in MIXED} and {"lora", "dora", "series", "adapterp", "parallel", "prefix",
                                                           "ia3"} <= co_trainable()
    assert not {"full", "bitfit", "none"} & co_trainable()


def _config(seed, **over):
    return TrainConfig(**{"batch_size": 8, "micro_batch_size": 4, "max_steps": 3, "warmup_steps": 1,
                          "learning_rate": 1e-2, "seed": seed, "val_set_size": 0, **over})


def _data(seed, lengths):
    sizes = [12] * 24 if lengths == "equal" else [5 + (i * 7 + seed) % 20 for i in range(24)]
    return features(sizes, seed=seed)


def _member(base, method, args, seed):
    torch.manual_seed(seed)  # what the runner does before a solo trial's inject
    return methods.apply(sharing_copy(base), method, args)


def _trained(model):
    return [p.detach().clone() for p in model.parameters() if p.requires_grad]


def _solo(family, method, args, seed, data, cfg, dtype=torch.float64):
    model = _member(tiny_model(family).to(dtype), method, args, seed)
    stats = train(model, tiny_tokenizer(), data, cfg, log_every=1)
    return [loss for _, loss in stats.loss_history], _trained(model)


def _group(family, specs, datas, cfgs, dtype=torch.float64):
    base = tiny_model(family).to(dtype)
    trees = [_member(base, method, args, seed) for method, args, seed in specs]
    members = [Member(tree, tiny_tokenizer(), data, cfg, hook=methods.get(method).decode_hook)
               for tree, (method, _, _), data, cfg in zip(trees, specs, datas, cfgs)]
    outcomes = train_group(base, members, log_every=1)
    return trees, outcomes


def _worst_param(got, want):
    return max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in zip(got, want))


def _worst_loss(got, want):
    assert len(got) == len(want)
    return max(abs(a - b) / abs(b) for a, b in zip(got, want))


@pytest.mark.parametrize("family,lengths", list(TOLERANCE))
def test_a_mixed_group_of_eight_equals_solo_runs_in_float64(family, lengths):
    datas = [_data(seed, lengths) for _, _, seed in MIXED]
    cfgs = [_config(seed) for _, _, seed in MIXED]
    trees, outcomes = _group(family, MIXED, datas, cfgs)
    loss_tol, param_tol = TOLERANCE[(family, lengths)]
    for (method, args, seed), tree, outcome, data, cfg in zip(MIXED, trees, outcomes, datas, cfgs):
        assert not isinstance(outcome, BaseException), f"{method}: {outcome}"
        losses, params = _solo(family, method, args, seed, data, cfg)
        assert outcome.steps == 3 and outcome.forwards == 3
        assert _worst_loss([loss for _, loss in outcome.loss_history], losses) <= loss_tol, method
        assert _worst_param(_trained(tree), params) <= param_tol, method


def test_a_members_dropout_does_not_depend_on_its_co_members():
    """With dropout on, one trial in two different groups: the same losses (its masks come from its own stream)."""
    x = ("lora", {"dropout": 0.3}, 11)
    others = [("series", {"bottleneck_size": 8, "adapter_dropout": 0.2}, 12), ("prefix", {"num_virtual_tokens": 2}, 13),
              ("dora", {"dropout": 0.1}, 14)]
    runs = []
    for specs in ([x, others[0]], [others[2], others[1], x]):
        datas = [_data(seed, "mixed") for _, _, seed in specs]
        trees, outcomes = _group("llama", specs, datas, [_config(seed) for _, _, seed in specs])
        runs.append([loss for _, loss in outcomes[specs.index(x)].loss_history])
    assert _worst_loss(runs[0], runs[1]) <= 1e-9
    alone = _group("llama", [x], [_data(11, "mixed")], [_config(11)])[1][0]
    assert _worst_loss([loss for _, loss in alone.loss_history], runs[0]) <= 1e-9


def test_members_leave_on_their_own_steps_and_failures_and_the_rest_match_solo():
    specs = [("lora", {"dropout": 0.0}, 21), ("series", {"bottleneck_size": 8}, 22), ("ia3", {}, 23)]
    cfgs = [_config(21, max_steps=1), _config(22), _config(23, max_steps=4)]
    datas = [_data(seed, "mixed") for _, _, seed in specs]
    base = tiny_model("llama").to(torch.float64)
    trees = [_member(base, method, args, seed) for method, args, seed in specs]
    with torch.no_grad():  # the series member's adapter is broken: its loss is NaN from the first step
        next(m for m in trees[1].modules() if hasattr(m, "adapter_up")).adapter_up.weight.fill_(float("nan"))
    members = [Member(tree, tiny_tokenizer(), data, cfg) for tree, data, cfg in zip(trees, datas, cfgs)]
    outcomes = train_group(base, members, log_every=1)
    assert outcomes[0].steps == 1  # fewer steps: left after its first
    assert isinstance(outcomes[1], FloatingPointError) and "non-finite loss at step" in str(outcomes[1])
    assert outcomes[2].steps == 4
    for index in (0, 2):
        method, args, seed = specs[index]
        losses, params = _solo("llama", method, args, seed, datas[index], cfgs[index])
        assert _worst_loss([loss for _, loss in outcomes[index].loss_history], losses) <= 1e-9
        assert _worst_param(_trained(trees[index]), params) <= 1e-7


def test_what_cannot_share_a_base_is_refused_before_training():
    base = tiny_model("llama").to(torch.float64)
    lora = _member(base, "lora", {"dropout": 0.0}, 2)
    full = _member(base, "full", {}, 1)  # trains the base itself (the parameters every tree shares)
    with pytest.raises(CannotCoTrain, match="trains parameters of the shared base"):
        train_group(base, [Member(lora, tiny_tokenizer(), _data(2, "mixed"), _config(2)),
                           Member(full, tiny_tokenizer(), _data(1, "mixed"), _config(1))])
    assert all(not type(m).__name__ == "Routed" for m in base.modules())  # the base is as it was
    dropping = tiny_model("llama").to(torch.float64)
    dropping.config.attention_dropout = 0.1
    member = _member(dropping, "lora", {"dropout": 0.0}, 3)
    with pytest.raises(CannotCoTrain, match="attention_dropout"):
        train_group(dropping, [Member(member, tiny_tokenizer(), _data(3, "mixed"), _config(3))])


# ---- the runner: a group's trials stored as solo trials are, plus the group's name ----

def test_run_group_gives_each_trial_its_solo_result(tmp_path):
    from benchmark import runner
    from benchmark.planner import plan
    from tests.test_resume import write_suite

    suite = write_suite(tmp_path, "cotrain-runner", ["lora", "prefix", "series", "ia3"], steps=3)
    trials = plan(str(suite))[1]
    grouped = runner.run_group(trials, tmp_path / "data")
    names = {r.co_train_group for r in grouped}
    assert len(names) == 1 and next(iter(names)).startswith("g-")
    for trial, together in zip(trials, grouped):
        alone = runner.run_resolved(trial, tmp_path / "data")
        assert together.status == alone.status == "ok", together.error
        assert together.trial_id == alone.trial_id and alone.co_train_group is None
        assert (together.trainable_params, together.total_params) == (alone.trainable_params, alone.total_params)
        assert abs(together.train_loss - alone.train_loss) <= 1e-4 * abs(alone.train_loss)
        same = [a.output == b.output for name in alone.predictions
                for a, b in zip(together.predictions[name], alone.predictions[name])]
        assert sum(same) >= 0.99 * len(same)
        assert [(m.metric, m.value) for m in together.metrics] == [(m.metric, m.value) for m in alone.metrics]


def test_a_group_larger_than_fits_trains_in_rounds_with_the_same_numbers():
    """max_members (what the probe step decides on a GPU): the rest of the group trains in a later round."""
    specs = MIXED[:3]
    datas = [_data(seed, "mixed") for _, _, seed in specs]
    cfgs = [_config(seed) for _, _, seed in specs]
    base = tiny_model("llama").to(torch.float64)
    trees = [_member(base, method, args, seed) for method, args, seed in specs]
    members = [Member(tree, tiny_tokenizer(), data, cfg, hook=methods.get(method).decode_hook)
               for tree, (method, _, _), data, cfg in zip(trees, specs, datas, cfgs)]
    outcomes = train_group(base, members, log_every=1, max_members=2)
    for (method, args, seed), outcome, data, cfg in zip(specs, outcomes, datas, cfgs):
        losses, _ = _solo("llama", method, args, seed, data, cfg)
        assert _worst_loss([loss for _, loss in outcome.loss_history], losses) <= 1e-9, method
