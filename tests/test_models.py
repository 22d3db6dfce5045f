"""Model loading: the embedded zoo (built once, deterministic, pretrained), loading through the same
path as a user's local checkpoint, per-worker caching without leaks, and clear errors."""

import json
import shutil

import pytest
import torch

from benchmark import models
from benchmark.errors import UserError
from benchmark.models import tokenizer as embedded_tokenizer
from benchmark.models import zoo
from benchmark.registry import catalogue
from benchmark.registry.catalogue import ModelEntry

ZOO_FAMILIES = {"tiny-llama": "llama", "tiny-bloom": "bloom", "tiny-gptj": "gptj", "tiny-bert": "bert",
                "tiny-roberta": "roberta"}


@pytest.mark.parametrize("name", list(ZOO_FAMILIES))
def test_every_zoo_model_loads_through_the_catalogue(name):
    entry = catalogue.model(name)
    model, tok = models.load(entry)
    assert model.config.model_type == ZOO_FAMILIES[name] == entry.model_family
    assert all(p.dtype == torch.float32 for p in model.parameters())
    text = "Tom has 3 apples.\n                ### Response:\n                "
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte-level BPE: exact round trip, whitespace included
    if entry.model_family in models.CAUSAL_FAMILIES:
        assert tok.pad_token_id == 0 and tok.padding_side == "left"  # LLM-Adapters finetune.py
        assert "token_type_ids" not in tok(text)
        out = model.generate(**tok([text], return_tensors="pt"), max_new_tokens=3, do_sample=False)
        assert out.shape[1] >= len(tok(text)["input_ids"]) + 1
    else:
        enc = tok("a dog", "a cat")
        assert enc["input_ids"][0] == embedded_tokenizer.CLS_ID and enc["input_ids"][-1] == embedded_tokenizer.SEP_ID


def test_zoo_is_built_once_and_reused():
    path = zoo.ensure("tiny-llama")
    stamp_file = path / "peft-bench-stamp.json"
    before = stamp_file.stat().st_mtime_ns
    assert zoo.ensure("tiny-llama") == path
    assert stamp_file.stat().st_mtime_ns == before
    assert json.loads(stamp_file.read_text()) == json.loads(json.dumps(zoo.stamp("tiny-llama")))
    assert list(path.glob("*.safetensors")) and not list(path.glob("*.bin"))


def test_zoo_causal_models_are_pretrained_not_random():
    info = json.loads((zoo.ensure("tiny-llama") / "pretraining.json").read_text())
    first, last = info["loss_history"][0][1], info["final_loss"]
    assert info["steps"] == info["settings"]["steps"] > 0
    assert last < first / 3  # the base model has learned the embedded text's language
    assert "pretraining" in zoo.stamp("tiny-llama") and "pretraining" in zoo.stamp("tiny-bert")


def test_zoo_encoders_are_masked_lm_pretrained():
    info = json.loads((zoo.ensure("tiny-roberta") / "pretraining.json").read_text())
    assert info["steps"] == info["settings"]["max_steps"] > 0
    assert info["final_loss"] < info["loss_history"][0][1] - 1.0  # it learned something of the text


def test_zoo_build_is_deterministic(tmp_path):
    """Two builds from scratch give identical weights (a changed cache would change every result);
    a short pretraining keeps the test fast, the code path is the zoo's own."""
    from safetensors.torch import load_file

    zoo.build("tiny-bert", tmp_path / "a", pretrain_overrides={"max_steps": 3})
    zoo.build("tiny-bert", tmp_path / "b", pretrain_overrides={"max_steps": 3})
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_local_directory_loads_like_the_embedded_source(tmp_path):
    copy = tmp_path / "my-llama"
    shutil.copytree(zoo.ensure("tiny-llama"), copy)
    embedded, _ = models.load(catalogue.model("tiny-llama"))
    local, tok = models.load(ModelEntry(name="mine", source=str(copy), model_family="llama"))
    assert tok.pad_token_id == 0
    for (name, p), (_, q) in zip(embedded.state_dict().items(), local.state_dict().items()):
        assert torch.equal(p, q), name


def test_load_cached_hands_out_independent_copies():
    entry = catalogue.model("tiny-llama")
    models.clear_cache()
    a, _ = models.load_cached(entry)
    with torch.no_grad():
        next(a.parameters()).add_(1.0)  # what a trial's full fine-tuning would do
    b, _ = models.load_cached(entry)
    fresh, _ = models.load(entry)
    assert torch.equal(next(b.parameters()), next(fresh.parameters()))
    assert not torch.equal(next(a.parameters()), next(b.parameters()))


def test_pickle_only_checkpoints_are_refused_unless_allowed(tmp_path, monkeypatch):
    ckpt = tmp_path / "pickled"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (ckpt / "pytorch_model.bin").write_bytes(b"not really")
    entry = ModelEntry(name="pickled", source=str(ckpt), model_family="llama")
    with pytest.raises(UserError, match="pickle"):
        models.resolve_source(entry)
    monkeypatch.setenv(models.ALLOW_PICKLE_ENV, "1")
    assert models.resolve_source(entry) == str(ckpt)


@pytest.mark.parametrize("source, message", [
    ("./no/such/dir", "no such directory"),
    ("nobody-here/no-such-model-xyz", "cannot load"),
])
def test_missing_models_fail_with_one_clear_line(source, message):
    with pytest.raises(UserError, match=message) as err:
        models.load(ModelEntry(name="x", source=source, model_family="llama"))
    assert "\n" not in str(err.value)


def test_family_mismatch_is_reported(tmp_path):
    with pytest.raises(UserError, match="family 'bloom'"):
        models.load(ModelEntry(name="wrong", source=str(zoo.ensure("tiny-llama")), model_family="bloom"))


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-roberta"])
def test_the_zoo_builder_trains_exactly_as_the_trial_loop_did(name):
    """models/pretrain.py has its own loop (loading a model never runs the trial loop); it must give the
    weights the trial loop gave when the zoo was stamped, or every cached zoo model would be stale."""
    import copy

    from benchmark.data.embedded import encoder_pretraining_documents, pretraining_documents
    from benchmark.models import pretrain
    from benchmark.registry.spec import TrainConfig
    from benchmark.train import train
    from benchmark.train.mlm import MlmSettings, train_mlm

    tok = embedded_tokenizer.wrap(zoo.ZOO[name][1])
    torch.manual_seed(zoo.SEED)
    base = zoo._model_class(zoo.ZOO[name][2]).from_config(zoo.config_for(name, len(tok)), dtype=torch.float32)
    ours, loop = copy.deepcopy(base), copy.deepcopy(base)
    if name == "tiny-llama":
        docs, s = pretraining_documents()[:200], {**pretrain.SETTINGS, "steps": 4}
        pretrain.pretrain_causal(ours, tok, docs, s)
        cfg = TrainConfig(epochs=1, max_steps=4, batch_size=s["batch_size"], micro_batch_size=s["batch_size"],
                          learning_rate=s["learning_rate"], warmup_steps=s["warmup_steps"], cutoff_len=s["max_len"],
                          group_by_length=True, packing=False, max_grad_norm=None, seed=s["seed"])
        train(loop, tok, pretrain.documents_features(tok, docs, s["max_len"]), cfg)
    else:
        docs, s = list(encoder_pretraining_documents())[:200], {**zoo.ENCODER_PRETRAIN_SETTINGS, "max_steps": 4}
        pretrain.pretrain_masked(ours, tok, docs, s)
        train_mlm(loop, tok, docs, MlmSettings(**s))
    a, b = ours.state_dict(), loop.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a[next(iter(a))], base.state_dict()[next(iter(a))])
