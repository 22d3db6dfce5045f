"""Co-training against solo trials: the same N trials (mixed methods, one base) trained one after another, each
alone as `peft-bench run` trains it, and trained together as one co-trained group (train/cotrain.py).

The members are llm_adapters/math's trials on the base perf measures (its command settings: 16 examples a step in
micro-batches of 4, cutoff 256; per-method learning rates and arguments as in suites/llm_adapters/math.yaml) plus
DoRA, AdapterP, (IA)^3 and a second LoRA with another rank and seed. Dropout is 0: a dropout mask is drawn for the
shape a forward has, and a solo trial's rows are not the group's, so with dropout on the two runs draw different masks
(a member's draws depend only on itself either way: tests/test_cotrain.py). The largest relative difference of any
member's loss at any step says that both runs computed the same training.
"""

from __future__ import annotations

import time

from benchmark.perf.settings import Settings

# (method, method_args, learning rate, seed): llm_adapters/math.yaml's llama settings, then the other co-trainable methods.
MEMBERS = [
    ("lora", {"r": 32, "alpha": 64, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]},
     3e-4, 0),
    ("dora", {"r": 32, "alpha": 64, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]},
     3e-4, 0),
    ("series", {"bottleneck_size": 256, "target_modules": ["up_proj", "gate_proj"]}, 3e-4, 0),
    ("adapterp", {"bottleneck_size": 256}, 3e-4, 0),
    ("parallel", {"bottleneck_size": 256, "target_modules": ["up_proj", "down_proj"]}, 3e-4, 0),
    ("prefix", {"num_virtual_tokens": 10}, 3e-2, 0),
    ("ia3", {}, 3e-4, 0),
    ("lora", {"r": 16, "alpha": 32, "dropout": 0.0}, 3e-4, 1),
]


def _config(s: Settings, lr: float, seed: int):
    from benchmark.registry.spec import TrainConfig

    return TrainConfig(batch_size=s.batch_size, micro_batch_size=s.micro_batch_size, max_steps=s.train_steps,
                       learning_rate=lr, warmup_steps=0, cutoff_len=s.cutoff_len, seed=seed)


def _tree(base, method: str, args: dict, seed: int):
    import torch

    from benchmark import methods
    from benchmark.train.routing import sharing_copy

    torch.manual_seed(seed)
    return methods.apply(sharing_copy(base), method, dict(args))


def measure(s: Settings, base, tokenizer, feats: list[dict]) -> dict:
    from benchmark import methods
    from benchmark.train import train
    from benchmark.train.cotrain import Member, train_group

    members = MEMBERS[:s.cotrain_members]
    base.eval()
    # Warm both paths once (lazy imports, first allocations), one step each.
    warm = replace_steps(s, 1)
    train(_tree(base, "lora", {"dropout": 0.0}, 0), tokenizer, feats, _config(warm, 3e-4, 0), log_every=1)
    train_group(base, [Member(_tree(base, m, a, seed), tokenizer, feats, _config(warm, lr, seed),
                              hook=methods.get(m).decode_hook) for m, a, lr, seed in members[:2]], log_every=1)

    solo_losses, solo_tokens = [], 0
    started = time.perf_counter()
    for method, args, lr, seed in members:
        stats = train(_tree(base, method, args, seed), tokenizer, feats, _config(s, lr, seed), log_every=1)
        solo_losses.append([loss for _, loss in stats.loss_history])
        solo_tokens += stats.tokens
    solo_s = time.perf_counter() - started

    started = time.perf_counter()
    group = [Member(_tree(base, method, args, seed), tokenizer, feats, _config(s, lr, seed),
                    hook=methods.get(method).decode_hook) for method, args, lr, seed in members]
    outcomes = train_group(base, group, log_every=1)
    cotrain_s = time.perf_counter() - started
    failed = [f"{m[0]}: {o}" for m, o in zip(members, outcomes) if isinstance(o, BaseException)]
    if failed:
        raise RuntimeError(f"perf cotrain: members failed: {'; '.join(failed)}")
    worst = max(abs(a - b) / max(abs(b), 1e-12) for o, alone in zip(outcomes, solo_losses)
                for (_, a), b in zip(o.loss_history, alone))
    tokens = sum(o.tokens for o in outcomes)
    return {"trials": len(members), "methods": [m[0] for m in members], "steps": s.train_steps,
            "batch_size": s.batch_size, "micro_batch_size": s.micro_batch_size,
            "solo_s": solo_s, "cotrain_s": cotrain_s, "speedup": solo_s / cotrain_s,
            "solo_tokens_per_s": solo_tokens / solo_s, "cotrain_tokens_per_s": tokens / cotrain_s,
            "max_loss_rel_diff": worst}


def replace_steps(s: Settings, steps: int) -> Settings:
    from dataclasses import replace

    return replace(s, train_steps=steps)
