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


# ---- family auto: any LLaMA-layout decoder (registry/checkpoint.py) ----

LAYOUTS = {  # tiny random configs: GQA in Mistral and Qwen2; Qwen2 with attention biases and tied embeddings
    "llama": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "max_position_embeddings": 128},
    "mistral": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "max_position_embeddings": 128},
    "qwen2": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 128, "tie_word_embeddings": True},
    "gpt2": {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128},
}


def save_tiny(model_type: str, out, tokenizer=None):
    """A random tiny checkpoint of `model_type` with the embedded causal tokenizer, saved with save_pretrained."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tokenizer or embedded_tokenizer.wrap("causal")
    ids = {"bos_token_id": embedded_tokenizer.BOS_ID, "eos_token_id": embedded_tokenizer.EOS_ID, "pad_token_id": 0}
    config = AutoConfig.for_model(model_type, vocab_size=len(tok), **ids, **LAYOUTS[model_type])
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def parse_one(body: dict, file):
    return catalogue.parse_models({"models": {"mine": body}}, file)["mine"]


@pytest.mark.parametrize("model_type", ["mistral", "qwen2"])
def test_family_auto_takes_llama_layout_checkpoints_with_llama_defaults(tmp_path, model_type):
    from benchmark import methods

    ckpt = save_tiny(model_type, tmp_path / model_type)
    entry = parse_one({"source": str(ckpt), "family": "auto"}, tmp_path / "cat.yaml")
    assert (entry.model_family, entry.model_type) == ("llama", model_type)
    model, tok = models.load(entry)
    assert model.config.model_type == model_type and tok.pad_token_id == 0 and tok.padding_side == "left"
    assert methods.model_family_of(model) == "llama"
    lora = methods.apply(model, "lora", {})  # the llama defaults: q_proj, v_proj
    assert {n.split(".")[-4] for n, p in lora.named_parameters() if p.requires_grad} == {"q_proj", "v_proj"}


def test_family_auto_refuses_another_layout_in_one_line_naming_what_is_missing(tmp_path):
    ckpt = save_tiny("gpt2", tmp_path / "gpt2")
    with pytest.raises(UserError) as err:
        parse_one({"source": str(ckpt), "family": "auto"}, tmp_path / "cat.yaml")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'cat.yaml'}: models.mine.family: auto: ") and "\n" not in message
    assert "'gpt2' model" in message and "layers.N.self_attn.q_proj" in message and "layers.N.mlp.gate_proj" in message


def test_family_auto_reads_an_arch_block_before_any_weights_exist(tmp_path):
    """An HF id that is nowhere on this machine plans and is priced from its arch block (Qwen2.5-0.5B's shape)."""
    from benchmark import params
    from benchmark.registry import catalogues

    arch = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
            "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True}
    cat = tmp_path / "cat.yaml"
    import yaml

    cat.write_text(yaml.safe_dump({"models": {"qwen-half": {"source": "nobody/qwen-not-here", "family": "auto",
                                                            "arch": arch}}}))
    with catalogues.using(catalogues.load([str(cat)])):
        entry = catalogue.model("qwen-half")
        assert (entry.model_family, entry.model_type) == ("llama", "qwen2")
        priced = params.count_for("qwen-half", "lora")
    assert priced["base_total"] == 494_032_768  # Qwen2.5-0.5B's published count
    assert priced["trainable"] == 24 * (8 * (896 + 896) + 8 * (896 + 128))  # q_proj and v_proj (GQA: v is 128 wide)
    with pytest.raises(UserError, match=r"models\.x\.arch\.model_type: got None; allowed: the architecture's"):
        catalogue.parse_models({"models": {"x": {"source": "nobody/x", "family": "auto", "arch": {"hidden_size": 8}}}},
                               cat)


def test_family_auto_without_arch_reads_hf_ids_from_the_local_cache_only(tmp_path):
    with pytest.raises(UserError, match=r"models\.mine\.family: auto: source 'nobody/not-cached-xyz': config not in "
                                        r"the local HF cache"):
        parse_one({"source": "nobody/not-cached-xyz", "family": "auto"}, tmp_path / "cat.yaml")


def test_a_declared_family_refuses_another_architecture_and_points_to_auto(tmp_path):
    ckpt = save_tiny("mistral", tmp_path / "mistral")
    with pytest.raises(UserError, match=r"is a 'mistral' model but .* says family 'llama' \(family: auto accepts"):
        models.load(ModelEntry(name="m", source=str(ckpt), model_family="llama"))


# ---- the EOS rule (models.load) ----

def test_a_tokenizer_eos_that_disagrees_with_the_generation_config_is_resolved_and_recorded(tmp_path):
    from benchmark.data.example import Example
    from benchmark.data.prompts import tokenize_for_training

    tok = embedded_tokenizer.wrap("causal")
    tok.eos_token = tok.convert_ids_to_tokens(embedded_tokenizer.BOS_ID)  # what SmolLM2's GGUF conversion does
    ckpt = save_tiny("llama", tmp_path / "eos", tokenizer=tok)
    model, tok = models.load(ModelEntry(name="eos", source=str(ckpt), model_family="llama"))
    eos = embedded_tokenizer.EOS_ID
    assert tok.eos_token_id == eos == model.generation_config.eos_token_id
    notes = models.load_notes(model)["eos_resolved"]
    assert notes["tokenizer_eos"]["id"] == embedded_tokenizer.BOS_ID and notes["eos"]["id"] == eos
    assert notes["rule"] == models.EOS_RULE
    features = tokenize_for_training(tok, Example(id="1", instruction="Add 1 and 2.", input="", output="3",
                                                  answer="3"), cutoff_len=64, train_on_inputs=False)
    assert features["input_ids"][-1] == eos  # training appends what decoding stops on
    again, _ = models.load(catalogue.model("tiny-llama"))  # tokenizer and model agree: nothing to record
    assert models.load_notes(again) == {}


# ---- GGUF sources: what is missing is said in one line ----

def test_a_gguf_source_in_a_missing_package_names_what_to_install(tmp_path):
    entry = parse_one({"source": "python:no_such_gguf_wheel/model.Q4_1.gguf", "family": "llama",
                       "source_note": "make smollm2"}, tmp_path / "cat.yaml")
    with pytest.raises(UserError, match=r"^model mine: source .* names Python package 'no_such_gguf_wheel', which is "
                                        r"not installed \(allowed: an installed package; make smollm2\)$"):
        models.load(entry)


def test_a_missing_gguf_package_names_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    gguf_file = tmp_path / "m.gguf"
    gguf_file.write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(UserError, match=r"^model g: reading a \.gguf source needs the Python package gguf, which is "
                                        r"not installed; pip install gguf==0\.19\.0 \(make smollm2 installs it\)$"):
        models.load(ModelEntry(name="g", source=str(gguf_file), model_family="llama"))
    with pytest.raises(UserError, match=r"^model g: source '.*nothing\.gguf': no such GGUF file$"):
        models.load(ModelEntry(name="g", source=str(tmp_path / "nothing.gguf"), model_family="llama"))


def test_the_eos_rule_applied_at_load_is_recorded_in_the_trial_row(tmp_path, monkeypatch):
    """A trial on a checkpoint whose tokenizer EOS disagrees with its config stores what load resolved, with the
    decoding of every eval set (the rule decides where outputs stop)."""
    from benchmark import planner, runner

    tok = embedded_tokenizer.wrap("causal")
    tok.eos_token = tok.convert_ids_to_tokens(embedded_tokenizer.BOS_ID)
    ckpt = save_tiny("llama", tmp_path / "eos", tokenizer=tok)
    suite = tmp_path / "eos.yaml"
    suite.write_text(f"""name: eos-rule
version: "1"
description: a checkpoint whose tokenizer EOS disagrees with its config
models:
  eos-model: {{source: "{ckpt}", family: llama}}
defaults:
  model: eos-model
  method: lora
  train_data: emb-math_10k
  eval_data: [emb-gsm8k]
  train: {{max_steps: 1, max_train_examples: 8, batch_size: 4, micro_batch_size: 4, cutoff_len: 128}}
  eval: {{max_eval_examples: 2, num_beams: 1, max_new_tokens: 4}}
""")
    _, [trial] = planner.plan(str(suite))
    result = runner.run_resolved(trial, tmp_path / "data")
    assert result.status == "ok", result.error
    notes = result.decoding["emb-gsm8k"]["model"]["eos_resolved"]
    assert notes["tokenizer_eos"]["id"] == embedded_tokenizer.BOS_ID and notes["eos"]["id"] == embedded_tokenizer.EOS_ID
