"""The embedded zoo: tiny random-initialised LLaMA, BLOOM, GPT-J, BERT and RoBERTa.

Each model keeps the module names of its full-size family (q_proj/.../down_proj for LLaMA,
query_key_value/dense_h_to_4h/... for BLOOM, q_proj/out_proj/fc_in/fc_out for GPT-J), so every
method's default target modules apply unchanged. They are small enough to train a few hundred
steps on a laptop CPU in seconds and large enough to learn the embedded synthetic tasks.

The models are then pretrained briefly on plain embedded text by the zoo's own builder
(models/pretrain.py says why, on what and how; never the trial loop), so parameter-efficient
methods have a base model worth adapting.

`ensure(name)` builds a model once with a fixed seed and saves it with `save_pretrained`
(safetensors) plus its tokenizer under `$PEFT_BENCH_CACHE/zoo/<name>/`; after that it loads
exactly like a user's local checkpoint. The directory is stamped with the zoo version, the
config and the tokenizer's stamp, so changing any of them rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.errors import UserError, did_you_mean
from benchmark.models import tokenizer as embedded_tokenizer
from benchmark.models.atomic import build_once
from benchmark.models.pretrain import SETTINGS as PRETRAIN_SETTINGS
from benchmark.models.tokenizer import BOS_ID, CAUSAL_PAD_ID, CLS_ID, ENCODER_PAD_ID, EOS_ID, SEP_ID

ZOO_VERSION = 4  # 3: the encoders are masked-LM pretrained too; 4: training pads on the right
SEED = 1234
HIDDEN, LAYERS, HEADS, INTERMEDIATE, MAX_POSITIONS = 128, 2, 4, 256, 512

# Masked-LM pretraining of the tiny encoders (about 40 s each on two idle cores): without it, methods
# that freeze the encoder would adapt a random network, as the causal models' note in pretrain.py explains.
ENCODER_PRETRAIN_SETTINGS = {"max_steps": 300, "batch_size": 16, "learning_rate": 2.0e-3, "warmup_ratio": 0.05,
                             "mlm_probability": 0.15, "max_length": 128, "seed": 1234}

_CAUSAL_IDS = {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": CAUSAL_PAD_ID}
_ENCODER_IDS = {"bos_token_id": CLS_ID, "eos_token_id": SEP_ID, "pad_token_id": ENCODER_PAD_ID}

# name -> (model_type, tokenizer variant, head, HF config fields other than vocab_size)
ZOO: dict[str, tuple[str, str, str, dict]] = {
    "tiny-llama": ("llama", "causal", "causal-lm", {
        "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": HEADS, "max_position_embeddings": MAX_POSITIONS,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": False, **_CAUSAL_IDS}),
    "tiny-bloom": ("bloom", "causal", "causal-lm", {  # BLOOM's MLP is fixed at 4 x hidden
        "hidden_size": HIDDEN, "n_layer": LAYERS, "n_head": HEADS, **_CAUSAL_IDS}),
    "tiny-gptj": ("gptj", "causal", "causal-lm", {  # head dim 32; rotary on the first 16 dims, as 64 of 256 in GPT-J-6B
        "n_embd": HIDDEN, "n_layer": LAYERS, "n_head": HEADS, "n_inner": INTERMEDIATE, "rotary_dim": 8,
        "n_positions": MAX_POSITIONS, "tie_word_embeddings": False, **_CAUSAL_IDS}),
    "tiny-bert": ("bert", "bert", "masked-lm", {
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE, "max_position_embeddings": MAX_POSITIONS, "type_vocab_size": 2,
        **_ENCODER_IDS}),
    # RoBERTa numbers positions from pad_id + 1, so the table is longer by pad_id + 1 (514 in roberta-base).
    "tiny-roberta": ("roberta", "roberta", "masked-lm", {
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE, "max_position_embeddings": MAX_POSITIONS + ENCODER_PAD_ID + 1,
        "type_vocab_size": 1, **_ENCODER_IDS}),
}


def names() -> list[str]:
    return list(ZOO)


def _spec(name: str) -> tuple[str, str, str, dict]:
    if name not in ZOO:
        raise UserError(f"unknown embedded model {name!r}{did_you_mean(name, ZOO)}; allowed: {', '.join(ZOO)}")
    return ZOO[name]


def config_for(name: str, vocab_size: int):
    """The HF config of a zoo model for a vocabulary of `vocab_size` tokens."""
    from transformers import AutoConfig

    model_type, _, _, fields = _spec(name)
    return AutoConfig.for_model(model_type, vocab_size=vocab_size, **fields)


def _model_class(head: str):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    return {"causal-lm": AutoModelForCausalLM, "masked-lm": AutoModelForMaskedLM}[head]


def build(name: str, out_dir: Path, pretrain_overrides: dict | None = None) -> None:
    """Build `name` with the fixed seed and save model, generation config and tokenizer into out_dir.
    pretrain_overrides: changed pretraining settings (tests only; the zoo stamp records the defaults)."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_type, variant, head, _ = _spec(name)
    tok = embedded_tokenizer.wrap(variant)
    config = config_for(name, vocab_size=len(tok))
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG untouched
        torch.manual_seed(SEED)
        model = _model_class(head).from_config(config, dtype=torch.float32)
    if head == "causal-lm":
        from benchmark.data.embedded import pretraining_documents
        from benchmark.models.pretrain import pretrain_causal

        with torch.random.fork_rng(devices=[]):
            stats = pretrain_causal(model, tok, pretraining_documents(), pretrain_overrides)
        (out_dir / "pretraining.json").write_text(json.dumps(
            {"settings": PRETRAIN_SETTINGS, "documents": len(pretraining_documents()), "steps": stats.steps,
             "final_loss": stats.final_loss, "loss_history": stats.loss_history, "seconds": stats.seconds}, indent=1))
        model.generation_config.bos_token_id = BOS_ID
        model.generation_config.eos_token_id = EOS_ID
        model.generation_config.pad_token_id = CAUSAL_PAD_ID
    else:  # encoders: masked-LM pretraining on the encoder tasks' kind of text (models/pretrain.py)
        from benchmark.data.embedded import encoder_pretraining_documents
        from benchmark.models.pretrain import pretrain_masked

        documents = list(encoder_pretraining_documents())
        settings = {**ENCODER_PRETRAIN_SETTINGS, **(pretrain_overrides or {})}
        with torch.random.fork_rng(devices=[]):
            stats = pretrain_masked(model, tok, documents, settings)
        (out_dir / "pretraining.json").write_text(json.dumps(
            {"settings": settings, "documents": len(documents), "steps": stats.steps,
             "final_loss": stats.final_loss, "loss_history": stats.loss_history, "seconds": stats.seconds}, indent=1))
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)


def stamp(name: str) -> dict:
    model_type, variant, head, fields = _spec(name)
    out = {"zoo_version": ZOO_VERSION, "seed": SEED, "model_type": model_type, "head": head,
           "tokenizer_variant": variant, "config": fields, "tokenizer": embedded_tokenizer.stamp()}
    from benchmark.data.embedded import GENERATOR_VERSION

    settings = PRETRAIN_SETTINGS if head == "causal-lm" else ENCODER_PRETRAIN_SETTINGS
    out["pretraining"] = {**settings, "generator_version": GENERATOR_VERSION}
    return out


def ensure(name: str) -> Path:
    """The directory of zoo model `name`, built on first use (atomic, safe across processes)."""
    from benchmark.paths import cache_dir

    expected = stamp(name)  # validates the name before anything is written
    return build_once(cache_dir() / "zoo" / name, expected, lambda tmp: build(name, tmp))
