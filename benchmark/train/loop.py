"""A lean PyTorch training loop with the LLM-Adapters finetune.py semantics.

AdamW over trainable parameters, gradients clipped to a global norm of cfg.max_grad_norm (the
Trainer's default 1.0), linear warmup then linear decay to 0 (transformers'
get_linear_schedule_with_warmup), gradient accumulation of batch_size // micro_batch_size
micro-batches per optimizer step, causal-LM loss computed by the model from `labels` (so peft's
prompt-learning wrappers can prepend their -100s), padding to a multiple of 8.

Padding goes on the right (finetune.py pads training batches on the left, with the tokenizer it
generates with). Under left padding every pad position is a query that may attend to nothing, and
CUDA's fused SDPA kernels return non-finite gradients for some such fully masked rows: measured on
an H200 (torch 2.11, bf16, a 1B LLaMA shape), length-grouped micro-batches of 16 went NaN at step
18 with the default kernel and stayed finite on the math kernel. On the right, every query sees at
least its own example's first token, and positions start at 0 as unpadded. With the first token
never a target (tokenize_for_training), the loss does not depend on the side or on batchmates.

One deliberate difference from the 2023 HF Trainer: the accumulated loss is the mean over every
label token of the optimizer step (each micro-batch mean is weighted by its token count), not
the mean of the micro-batch means. This is what transformers does since 4.46, and it makes
micro_batch_size a pure memory knob: the update does not depend on how the batch is split.

Micro-batches are packed (train/packing.py: one row, no padding, attention kept inside each example)
where the model allows it and a probe at the start confirms packed and unpacked losses agree; the
micro-batches are then the reference's plainly shuffled ones. Otherwise they are padded, and length
grouped when cfg.group_by_length. Packed, the examples of an optimizer step go through the model in
as few rows as fit in micro_batch_size x cutoff_len tokens (batching.packed_rows): with the
token-weighted loss above, how a step is split changes only rounding, dropout's draws, speed and
memory. Padded micro-batches run as they come (a padded row's cost also depends on what a method
adds per row, e.g. virtual tokens, so merging them could exceed the memory the reference needs).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from benchmark.metrics import MetricDef
from benchmark.models.attention import base_of
from benchmark.registry.spec import TrainConfig
from benchmark.train.batching import epoch_batches, packed_rows
from benchmark.train.collate import collate, loss_weight
from benchmark.train.packing import pack, packed_forward, packing_matches

log = logging.getLogger(__name__)


@dataclass
class TrainStats:
    steps: int  # optimizer steps taken
    loss_history: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since last log)
    final_loss: float | None = None  # mean step loss over the last logging window
    seconds: float = 0.0
    tokens: int = 0  # non-pad tokens fed to the model
    tokens_per_s: float = 0.0
    val_loss: float | None = None  # token-mean loss on the held-out split (val_set_size > 0)
    train_examples: int = 0
    val_examples: int = 0
    dev_history: list[tuple[int, float]] = field(default_factory=list)  # (epoch, dev score) when dev_score is given
    best_epoch: int | None = None  # the epoch whose weights were restored
    best_dev: float | None = None
    stopped_early: bool = False
    packed: bool = False  # micro-batches were packed (else padded)
    forwards: int = 0  # model forwards (and backwards) run: the micro-batches, or fewer, fuller packed rows


def linear_schedule(warmup_steps: int, total_steps: int):
    """lr multiplier per step: 0 -> 1 over warmup, then 1 -> 0 at total_steps (as transformers)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def total_optimizer_steps(n_train: int, cfg: TrainConfig) -> int:
    """max_steps when given (it overrides epochs, as in transformers), else ceil(epochs * steps/epoch)."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    micro_batches = math.ceil(n_train / cfg.micro_batch_size)
    steps_per_epoch = math.ceil(micro_batches / cfg.grad_accum_steps)
    return max(1, math.ceil(cfg.epochs * steps_per_epoch))


def split_validation(features: list[dict], val_set_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded held-out split (finetune.py: train_test_split(test_size=val_set_size, seed=42))."""
    if val_set_size == 0:
        return list(features), []
    if val_set_size >= len(features):
        raise ValueError(f"train.val_set_size: got {val_set_size}; allowed: fewer than the {len(features)} training examples")
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed)).tolist()
    held_out = set(order[:val_set_size])
    train = [f for i, f in enumerate(features) if i not in held_out]
    val = [features[i] for i in sorted(held_out)]
    return train, val


def _autocast(model, device: str):
    # bf16 weights on CUDA: run matmuls in bf16 and keep the fp32 adapter parameters working.
    if device.startswith("cuda") and any(p.dtype == torch.bfloat16 for p in model.parameters()):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# Set (True) on a model by a method that feeds it inputs through the key/value cache (prefix tuning's inject).
CACHE_INPUTS = "peft_bench_inputs_in_cache"


def _enable_checkpointing(model) -> bool:
    """Recompute each decoder layer's activations in the backward instead of storing them (memory for
    ~30% more compute; results unchanged). Non-reentrant, so frozen embeddings need no grad hook."""
    core = base_of(model)
    if not getattr(core, "supports_gradient_checkpointing", False):
        raise ValueError(f"train.gradient_checkpointing: {type(core).__name__} does not support it; allowed: false")
    if getattr(model, CACHE_INPUTS, False):
        # transformers' checkpointed layers drop the cache in training, and this method's inputs are that cache: the
        # model would train without them (nothing to differentiate). Memory, not results: train without.
        log.warning("train.gradient_checkpointing: off for this method (its virtual key/values are the cache that "
                    "checkpointed layers drop)")
        return False
    core.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return True


def _to(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


TRAIN_PADDING_SIDE = "right"  # see the module's docstring


def _pad_settings(tokenizer) -> tuple[int, str]:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return pad_id, TRAIN_PADDING_SIDE


@torch.no_grad()
def evaluation_loss(model, tokenizer, features: list[dict], micro_batch_size: int, device: str = "cpu") -> float:
    """Token-weighted mean loss over `features`, in eval mode."""
    pad_id, side = _pad_settings(tokenizer)
    was_training = model.training
    model.eval()
    total, n_tokens = 0.0, 0
    try:
        for start in range(0, len(features), micro_batch_size):
            batch = collate(features[start:start + micro_batch_size], pad_id, side)
            n = loss_weight(batch)
            if n == 0:
                continue
            with _autocast(model, device):
                loss = model(**_to(batch, device)).loss
            total += float(loss) * n
            n_tokens += n
    finally:
        model.train(was_training)
    return total / n_tokens if n_tokens else float("nan")


def _micro_batch_stream(lengths: list[int], micro_batch_size: int, group_by_length: bool, generator: torch.Generator):
    """Micro-batches of index lists, epoch after epoch (epochs reshuffle with the same generator)."""
    while True:
        yield from epoch_batches(lengths, micro_batch_size, group_by_length, generator)


class BestWeights:
    """Early stopping on a dev score (better in the metric's direction): a copy of the trainable weights
    at the best epoch, restored at the end, and the patience count (cfg.early_stopping_patience epochs).
    Without a patience (SQuAD's protocol) nothing is restored: the last epoch's weights and score are the
    trial's."""

    def __init__(self, params: list[torch.nn.Parameter], patience: int | None, higher_is_better: bool = True):
        self.params, self.patience, self.higher_is_better = params, patience, higher_is_better
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.saved: list[torch.Tensor] = []
        self.since_best = 0

    def update(self, epoch: int, score: float) -> bool:
        """Record an epoch's score; True when patience has run out."""
        if self.patience is None:
            self.best, self.best_epoch = score, epoch
            return False
        if self.best is None or (score > self.best if self.higher_is_better else score < self.best):
            self.best, self.best_epoch, self.since_best = score, epoch, 0
            self.saved = [p.detach().clone() for p in self.params]
        else:
            self.since_best += 1
        return self.patience is not None and self.since_best >= self.patience

    @torch.no_grad()
    def restore(self) -> None:
        for p, saved in zip(self.params, self.saved):
            p.copy_(saved)


class TrialRun:
    """One trial's training state between optimizer steps: its data order, optimizer, schedule, early stopping
    and statistics. `train` below drives one; a co-trained group (train/cotrain.py) drives several through one
    shared base, each exactly as `train` would (the forwards and backwards are the caller's)."""

    def __init__(self, model, tokenizer, features: list[dict], cfg: TrainConfig, device: str = "cpu",
                 log_every: int = 10, val_features: list[dict] | None = None, dev_score=None,
                 dev_metric: MetricDef | None = None):
        if dev_score is not None and dev_metric is None:
            raise ValueError("train: dev_score needs dev_metric (the metric table's entry it returns)")
        if log_every < 1:
            raise ValueError(f"log_every: got {log_every}; allowed: an integer >= 1")
        if val_features is None:
            train_set, val_set = split_validation(features, cfg.val_set_size, cfg.seed)
        else:
            train_set, val_set = list(features), list(val_features)
        if not train_set:
            raise ValueError("train: no training examples")
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("train: the model has no trainable parameters")
        self.model, self.tokenizer, self.cfg, self.device, self.log_every = model, tokenizer, cfg, device, log_every
        self.train_set, self.val_set, self.dev_score = train_set, val_set, dev_score
        self.pad_id, self.side = _pad_settings(tokenizer)
        self.packing = cfg.packing and packing_matches(model, train_set, self.pad_id, self.side, device,
                                                       lambda: _autocast(model, device))
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        self.total_steps = total_optimizer_steps(len(train_set), cfg)
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           linear_schedule(cfg.warmup_steps, self.total_steps))
        self.lengths = [len(f["input_ids"]) for f in train_set]
        # Length grouping only cuts padding; packed micro-batches have none, so they keep the plain shuffle.
        self.stream = _micro_batch_stream(self.lengths, cfg.micro_batch_size, cfg.group_by_length and not self.packing,
                                          generator)
        self.stats = TrainStats(steps=0, train_examples=len(train_set), val_examples=len(val_set), packed=self.packing)
        self.steps_per_epoch = math.ceil(math.ceil(len(train_set) / cfg.micro_batch_size) / cfg.grad_accum_steps)
        self.best = (BestWeights(self.params, cfg.early_stopping_patience, dev_metric.higher_is_better)
                     if dev_score is not None else None)
        self.step_losses: list[float] = []
        self.window_start = 0
        self.checkpointing = cfg.gradient_checkpointing and _enable_checkpointing(model)
        keep_float64_loss(model)
        self.done = False
        model.train()
        self.started = time.perf_counter()

    def make_batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        features = [self.train_set[i] for i in indices]
        return pack(features, self.pad_id) if self.packing else collate(features, self.pad_id, self.side)

    def forward_context(self):
        return packed_forward(self.model) if self.packing else contextlib.nullcontext()

    def next_step(self) -> list[list[int]]:
        """The example indices of the next optimizer step, one list per forward (packed rows or micro-batches)."""
        chosen = [next(self.stream) for _ in range(self.cfg.grad_accum_steps)]
        if self.packing:  # a step's examples in as few rows as memory allows
            chosen = packed_rows([i for indices in chosen for i in indices], self.lengths,
                                 self.cfg.micro_batch_size * self.cfg.cutoff_len)
        self.stats.tokens += sum(self.lengths[i] for indices in chosen for i in indices)
        return chosen

    def finish_step(self, step_loss: float) -> None:
        """After the step's backwards: clip, update, schedule, log, and at an epoch's end the dev score. Sets
        `done` when the steps are spent or patience ran out; raises TimeoutError past train.max_seconds."""
        cfg = self.cfg
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        step = self.stats.steps + 1
        if cfg.max_seconds is not None and time.perf_counter() - self.started > cfg.max_seconds:
            raise TimeoutError(f"train.max_seconds: the time budget of {cfg.max_seconds:g} s ran out at step "
                               f"{step} of {self.total_steps}")
        self.optimizer.zero_grad(set_to_none=True)
        self.stats.steps = step
        self.step_losses.append(step_loss)
        if step % self.log_every == 0 or step == self.total_steps:
            window = self.step_losses[self.window_start:]
            if window:
                self.stats.loss_history.append((step, sum(window) / len(window)))
                log.info("step %d/%d loss %.4f lr %.3g", step, self.total_steps, self.stats.loss_history[-1][1],
                         self.scheduler.get_last_lr()[0])
            self.window_start = len(self.step_losses)
        if self.best is not None and (step % self.steps_per_epoch == 0 or step == self.total_steps):
            epoch = math.ceil(step / self.steps_per_epoch)
            score = float(self.dev_score(self.model))
            self.model.train()
            self.stats.dev_history.append((epoch, score))
            log.info("epoch %d dev %.3f", epoch, score)
            if self.best.update(epoch, score):
                self.stats.stopped_early = True
                self.done = True
        if step >= self.total_steps:
            self.done = True

    def stop(self) -> None:
        """The clock stops and the model leaves training mode (also after an error)."""
        self.stats.seconds = time.perf_counter() - self.started
        self.model.eval()
        if self.checkpointing:
            base_of(self.model).gradient_checkpointing_disable()
            self.checkpointing = False

    def result(self) -> TrainStats:
        """After stop(): the best epoch's weights restored, the closing loss and the held-out loss."""
        stats, best = self.stats, self.best
        if best is not None:
            if best.saved:
                best.restore()
            stats.best_epoch, stats.best_dev = best.best_epoch, best.best
        last = self.step_losses[-min(self.log_every, len(self.step_losses)):]
        stats.final_loss = sum(last) / len(last) if last else None
        stats.tokens_per_s = stats.tokens / stats.seconds if stats.seconds > 0 else 0.0
        if self.val_set:
            stats.val_loss = evaluation_loss(self.model, self.tokenizer, self.val_set, self.cfg.micro_batch_size,
                                             self.device)
        return stats


def train(model, tokenizer, features: list[dict], cfg: TrainConfig, device: str = "cpu", log_every: int = 10,
          val_features: list[dict] | None = None, dev_score=None, dev_metric: MetricDef | None = None) -> TrainStats:
    """Fine-tune the trainable parameters of `model` (already on `device`) on tokenised features.

    val_features: the held-out split (default: cfg.val_set_size features held out of `features`), whose
    loss is reported. dev_score(model) -> float, when given, is called after every epoch and returns the
    value of dev_metric (the metric table's entry: which direction is better); with
    cfg.early_stopping_patience the best epoch's weights are restored at the end and training stops
    after that many epochs without a better score."""
    run = TrialRun(model, tokenizer, features, cfg, device, log_every, val_features, dev_score, dev_metric)
    try:
        while not run.done:
            micro = [run.make_batch(indices) for indices in run.next_step()]
            run.stats.forwards += len(micro)
            counts = [loss_weight(b) for b in micro]
            step_tokens = sum(counts)
            step_loss = 0.0
            for batch, n in zip(micro, counts):
                if n == 0:  # every label masked (e.g. truncated prompt with train_on_inputs False)
                    continue
                with run.forward_context():
                    with _autocast(model, device):
                        loss = model(**_to(batch, device)).loss
                    check_loss(loss, run.stats.steps + 1)
                    # Weight each micro-batch mean by its share of the step's label tokens.
                    (loss * (n / step_tokens)).backward()
                step_loss += loss.item() * n / step_tokens
            run.finish_step(step_loss)
    finally:
        run.stop()
    return run.result()


def loss_dtype(logits: torch.Tensor) -> torch.dtype:
    """float32 for half precision and float32 logits (as transformers), float64 for float64 logits."""
    return torch.promote_types(logits.dtype, torch.float32)


def _float64_causal_lm_loss(logits, labels, vocab_size: int, num_items_in_batch=None, ignore_index: int = -100,
                            shift_labels=None, **kwargs):
    """transformers' ForCausalLMLoss with the logits' float64 kept (it casts every dtype to float32)."""
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    logits = logits.to(loss_dtype(logits)).reshape(-1, vocab_size)
    shift_labels = shift_labels.reshape(-1).to(logits.device)
    if num_items_in_batch is None:
        return F.cross_entropy(logits, shift_labels, ignore_index=ignore_index)
    return F.cross_entropy(logits, shift_labels, ignore_index=ignore_index, reduction="sum") / num_items_in_batch


def keep_float64_loss(model) -> None:
    """A float64 causal LM computes its loss in float64: what the tests of co-training compare to 1e-9 (transformers
    would round it to float32). Every other dtype keeps transformers' own loss."""
    core = base_of(model)
    dtypes = {p.dtype for p in core.parameters()}
    if dtypes == {torch.float64} and getattr(core, "loss_type", None) == "ForCausalLM":
        core.loss_function = _float64_causal_lm_loss


def check_loss(loss: torch.Tensor, step: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss at step {step}: {loss.item()}")
