"""The embedded tokenizer: byte-level BPE trained with `tokenizers` on the embedded corpus.

One vocabulary serves every tiny model. Digits are split before BPE runs, so every digit is a
token of its own and arithmetic stays learnable; byte-level pre-tokenisation makes decoding
exact (the reference prompt templates depend on precise whitespace) and leaves no unknown
characters. Special ids follow LLaMA (<unk>=0, used as pad as LLM-Adapters does; <s>=1;
</s>=2); the encoders get their own pad, cls, sep and mask tokens from the same vocabulary.

The trained tokenizer.json is cached under $PEFT_BENCH_CACHE/zoo/tokenizer/, stamped with a hash
of the corpus, so it is trained once per corpus and reused by every model of the zoo.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

from benchmark.models.atomic import build_once

TOKENIZER_VERSION = 2  # 2: the prompt templates weigh as in real training text
VOCAB_SIZE = 1536
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<cls>", "<sep>", "<mask>")
UNK_ID, BOS_ID, EOS_ID, ENCODER_PAD_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
CAUSAL_PAD_ID = UNK_ID  # LLM-Adapters: tokenizer.pad_token_id = 0
VARIANTS = ("causal", "bert", "roberta")


def embedded_corpus() -> list[str]:
    """The text the tokenizer is trained on (benchmark.data.embedded owns it)."""
    from benchmark.data.embedded import corpus

    return list(corpus())


# Swappable so tests can train on a small fixed corpus; production always reads the embedded one.
corpus_source: Callable[[], Iterable[str]] = embedded_corpus


@functools.lru_cache(maxsize=4)
def _corpus_and_hash(source: Callable[[], Iterable[str]]) -> tuple[tuple[str, ...], str]:
    texts = tuple(source())
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return texts, digest.hexdigest()[:16]


def stamp() -> dict:
    """What the cached tokenizer depends on: its settings and the corpus it was trained on."""
    _, corpus_hash = _corpus_and_hash(corpus_source)
    return {"tokenizer_version": TOKENIZER_VERSION, "vocab_size": VOCAB_SIZE,
            "special_tokens": list(SPECIAL_TOKENS), "corpus_sha256": corpus_hash}


def _new_bpe():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # Digits first (each digit its own pre-token, so BPE can never merge them), then byte-level.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def train(texts: Iterable[str]):
    """A `tokenizers.Tokenizer` trained on `texts` (deterministic for the same texts)."""
    from tokenizers import pre_tokenizers, trainers

    tok = _new_bpe()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(token) == token_id, f"special token {token} must have id {token_id}"
    return tok


def ensure_trained() -> Path:
    """tokenizer.json of the embedded tokenizer, trained on first use and cached."""
    from benchmark.paths import cache_dir

    def build(tmp: Path) -> None:
        texts, _ = _corpus_and_hash(corpus_source)
        train(texts).save(str(tmp / "tokenizer.json"))

    return build_once(cache_dir() / "zoo" / "tokenizer", stamp(), build) / "tokenizer.json"


def _post_processor(variant: str):
    from tokenizers import processors

    if variant == "causal":  # like LLaMA: BOS only
        return processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", BOS_ID)])
    specials = [("<cls>", CLS_ID), ("<sep>", SEP_ID)]
    if variant == "bert":  # segment ids 0/1 (type_vocab_size 2)
        return processors.TemplateProcessing(single="<cls> $A <sep>", pair="<cls> $A <sep> $B:1 <sep>:1",
                                             special_tokens=specials)
    # roberta: one segment type; pairs joined by a doubled separator
    return processors.TemplateProcessing(single="<cls> $A <sep>", pair="<cls> $A <sep> <sep> $B <sep>",
                                         special_tokens=specials)


def wrap(variant: str, tokenizer_json: Path | None = None):
    """The transformers tokenizer for a model of the zoo: "causal" (left padding, pad id 0),
    "bert" or "roberta" (right padding, cls/sep/mask)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if variant not in VARIANTS:
        raise ValueError(f"variant: got {variant!r}; allowed: {', '.join(VARIANTS)}")
    tok = Tokenizer.from_file(str(tokenizer_json or ensure_trained()))
    tok.post_processor = _post_processor(variant)
    common = {"tokenizer_object": tok, "unk_token": "<unk>", "clean_up_tokenization_spaces": False,
              "model_max_length": 512}
    if variant == "causal":
        return PreTrainedTokenizerFast(**common, bos_token="<s>", eos_token="</s>", pad_token="<unk>",
                                       padding_side="left", model_input_names=["input_ids", "attention_mask"])
    names = ["input_ids", "token_type_ids", "attention_mask"] if variant == "bert" else ["input_ids", "attention_mask"]
    return PreTrainedTokenizerFast(**common, bos_token="<cls>", eos_token="<sep>", pad_token="<pad>",
                                   cls_token="<cls>", sep_token="<sep>", mask_token="<mask>",
                                   padding_side="right", model_input_names=names)
