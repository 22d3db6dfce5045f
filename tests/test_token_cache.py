"""The tokenised-dataset cache: content-keyed, memory then disk, isolated copies, safe on damage."""

import pytest

from benchmark.data import token_cache
from benchmark.data.example import Example


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFT_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(token_cache.DISK_ENV, raising=False)
    token_cache.clear_memory()
    yield
    token_cache.clear_memory()


def counting_builder(features):
    calls = []

    def build():
        calls.append(1)
        return [dict(f) for f in features]
    return build, calls


FEATURES = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4, 5], "labels": [4, 5]}]


def test_built_once_then_served_from_memory_then_from_disk(tmp_path):
    build, calls = counting_builder(FEATURES)
    key = ("train", "digest-a", "tok-1", 256, True)
    assert token_cache.cached(key, build) == FEATURES
    assert token_cache.cached(key, build) == FEATURES
    assert len(calls) == 1
    files = list((tmp_path / "cache" / "token-cache").glob("*.arrow"))
    assert len(files) == 1 and files[0].stem == token_cache.key_of(key)
    token_cache.clear_memory()  # a new worker process: the disk copy serves it
    assert token_cache.cached(key, build) == FEATURES and len(calls) == 1


def test_any_key_part_change_rebuilds():
    build, calls = counting_builder(FEATURES)
    base = ("train", "digest-a", "tok-1", 256, True)
    token_cache.cached(base, build)
    for changed in [("train", "digest-b", "tok-1", 256, True), ("train", "digest-a", "tok-2", 256, True),
                    ("train", "digest-a", "tok-1", 128, True), ("train", "digest-a", "tok-1", 256, False)]:
        token_cache.cached(changed, build)
    assert len(calls) == 5


def test_callers_get_isolated_copies():
    build, _ = counting_builder(FEATURES)
    first = token_cache.cached(("k",), build)
    first.reverse()
    first[0]["input_ids"] = [9]
    assert token_cache.cached(("k",), build) == FEATURES


def test_damaged_disk_entry_is_rebuilt_and_disk_can_be_disabled(tmp_path, monkeypatch, caplog):
    build, calls = counting_builder(FEATURES)
    token_cache.cached(("k",), build)
    path = tmp_path / "cache" / "token-cache" / f"{token_cache.key_of(('k',))}.arrow"
    path.write_bytes(b"not arrow")
    token_cache.clear_memory()
    assert token_cache.cached(("k",), build) == FEATURES and len(calls) == 2
    assert "unreadable" in caplog.text
    monkeypatch.setenv(token_cache.DISK_ENV, "0")
    token_cache.cached(("other",), build)
    assert not (tmp_path / "cache" / "token-cache" / f"{token_cache.key_of(('other',))}.arrow").exists()


def test_digests_follow_content_not_names(tmp_path):
    a = Example(id="1", instruction="add 2 and 3", input="", output="5", answer="5")
    b = Example(id="2", instruction="add 2 and 4", input="", output="6", answer="6")
    assert token_cache.examples_digest([a, b]) == token_cache.examples_digest([a, b])
    assert token_cache.examples_digest([a, b]) != token_cache.examples_digest([b, a])
    edited = Example(id="1", instruction="add 2 and 3", input="", output="5.0", answer="5")
    assert token_cache.examples_digest([edited, b]) != token_cache.examples_digest([a, b])
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    one.write_text("[1, 2]")
    two.write_text("[1, 2]")
    assert token_cache.file_digest(one) == token_cache.file_digest(two)
    two.write_text("[1, 3]")
    assert token_cache.file_digest(one) != token_cache.file_digest(two)


def test_tokenizer_identity_sees_vocabulary_and_padding():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    def make(vocab):
        tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
        tok.pre_tokenizer = Whitespace()
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<unk>")

    small = make({"<unk>": 0, "a": 1, "b": 2})
    same = make({"<unk>": 0, "a": 1, "b": 2})
    other = make({"<unk>": 0, "a": 2, "b": 1})
    assert token_cache.tokenizer_identity(small) == token_cache.tokenizer_identity(same)
    assert token_cache.tokenizer_identity(small) != token_cache.tokenizer_identity(other)
    same.padding_side = "left" if same.padding_side == "right" else "right"
    assert token_cache.tokenizer_identity(small) != token_cache.tokenizer_identity(same)
    assert token_cache.code_identity(token_cache.cached) == token_cache.code_identity(token_cache.key_of)
