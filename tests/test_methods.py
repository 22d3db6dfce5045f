"""Methods on tiny LLaMA/BLOOM/GPT-J: which parameters each trains, bottleneck/DoRA/IA3/prompt semantics, validation,
published counts. The generic checks of every method x family are test_methods_matrix.py's."""

import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import torch.nn as nn

from benchmark import methods
from benchmark.errors import UserError
from benchmark.methods.bottleneck import BottleneckLinear
from benchmark.methods.bottleneck import Config as BottleneckConfig
from benchmark.methods.family import model_family_of
from benchmark.registry.catalogue import CAUSAL_FAMILIES as FAMILIES

# What a trainable parameter's name must contain, per method (dora trains lora_A/B and lora_magnitude_vector).
TRAINABLE_MARK = {"lora": "lora_", "dora": "lora_", "prefix": "prompt_encoder", "prompt": "prompt_encoder",
                  "ia3": "ia3_l", "series": "adapter_", "adapterp": "adapter_", "parallel": "adapter_"}


def tiny_config(family: str):
    from transformers import BertConfig, BloomConfig, GPTJConfig, LlamaConfig

    ids = {"vocab_size": 100, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    if family == "llama":
        return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=4, **ids)
    if family == "bloom":
        return BloomConfig(hidden_size=64, n_layer=2, n_head=4, **ids)
    if family == "gptj":
        return GPTJConfig(n_embd=64, n_layer=2, n_head=4, rotary_dim=8, n_positions=128, **ids)
    if family == "bert":
        return BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, **ids)
    raise ValueError(family)


def tiny_model(family: str):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(0)
    if family == "bert":
        return AutoModelForSequenceClassification.from_config(tiny_config(family))
    return AutoModelForCausalLM.from_config(tiny_config(family))


def injected(family: str, method: str, args: dict | None = None):
    return methods.apply(tiny_model(family), method, args or {})


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["full", *TRAINABLE_MARK])
def test_only_the_methods_parameters_train(method, family):
    model = injected(family, method)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    if method == "full":
        assert len(trainable) == len(list(model.parameters()))
    else:
        assert all(TRAINABLE_MARK[method] in n for n in trainable), trainable


# ---- dora, prompt, ia3 semantics ----

def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def _sgd_step(model, ids):
    model.train()
    model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    model.eval()


def test_dora_adds_trained_magnitude_vectors_and_starts_at_the_base_model():
    ids = torch.tensor([[5, 6, 7, 8]])
    plain = _logits(tiny_model("llama").eval(), ids)
    model = injected("llama", "dora").eval()
    layers = model.base_model.model.model.layers
    magnitudes = {}
    for i, layer in enumerate(layers):
        for name in ("q_proj", "v_proj"):  # lora's default targets
            module = getattr(layer.self_attn, name)
            m = module.lora_magnitude_vector["default"].weight
            assert m.requires_grad and m.shape == (module.out_features,)
            # B = 0 at init, so the magnitude is the row norm of the frozen weight
            torch.testing.assert_close(m, module.base_layer.weight.norm(dim=1))
            magnitudes[(i, name)] = m.detach().clone()
        assert not hasattr(layer.self_attn.k_proj, "lora_magnitude_vector")
    torch.testing.assert_close(_logits(model, ids), plain, atol=1e-5, rtol=1e-5)  # m * W / ||W|| = W
    _sgd_step(model, ids)
    assert any(not torch.equal(getattr(layers[i].self_attn, n).lora_magnitude_vector["default"].weight, m)
               for (i, n), m in magnitudes.items())
    assert not torch.allclose(_logits(model, ids), plain, atol=1e-5)
    lora_trainable = methods.count_parameters(injected("llama", "lora"))[0]
    assert methods.count_parameters(model)[0] - lora_trainable == 2 * 2 * 64  # 2 layers x (q, v) x out_features


@pytest.mark.parametrize("family", FAMILIES)
def test_ia3_starts_as_the_identity_and_scales_the_right_side(family):
    ids = torch.tensor([[5, 6, 7, 8]])
    plain = _logits(tiny_model(family).eval(), ids)
    model = injected(family, "ia3").eval()
    torch.testing.assert_close(_logits(model, ids), plain, atol=1e-5, rtol=1e-5)
    from benchmark.methods.ia3 import DEFAULT_FEEDFORWARD, DEFAULT_TARGETS

    seen = set()
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if hasattr(module, "ia3_l") and "default" in module.ia3_l:
            vec = module.ia3_l["default"]
            assert torch.equal(vec, torch.ones_like(vec))
            base = module.get_base_layer()
            # feedforward modules scale their input (1, in); the others their output (out, 1)
            expected = (1, base.in_features) if leaf in DEFAULT_FEEDFORWARD[family] else (base.out_features, 1)
            assert tuple(vec.shape) == expected, (name, vec.shape)
            seen.add(leaf)
    assert seen == set(DEFAULT_TARGETS[family])
    for p in (p for n, p in model.named_parameters() if "ia3_l" in n):
        p.data.mul_(1.5)
    assert not torch.allclose(_logits(model, ids), plain, atol=1e-3)


def test_ia3_feedforward_modules_can_be_set():
    model = methods.apply(tiny_model("llama"), "ia3", {"target_modules": ["k_proj", "down_proj"], "feedforward_modules": []})
    assert tuple(model.base_model.model.model.layers[0].mlp.down_proj.ia3_l["default"].shape) == (64, 1)  # output side
    model = methods.apply(tiny_model("llama"), "ia3", {"target_modules": "v_proj,down_proj"})  # the default ff kept
    assert tuple(model.base_model.model.model.layers[0].mlp.down_proj.ia3_l["default"].shape) == (1, 128)
    with pytest.raises(UserError, match=r"^method ia3: method_args.feedforward_modules: q_proj not among the target"):
        methods.apply(tiny_model("llama"), "ia3", {"feedforward_modules": ["q_proj"]})


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_tuning_trains_num_virtual_tokens_embeddings(family):
    hidden = 64
    for n in (30, 5):
        model = methods.apply(tiny_model(family), "prompt", {} if n == 30 else {"num_virtual_tokens": n})
        trainable, _ = methods.count_parameters(model)
        assert trainable == n * hidden
        assert model.prompt_encoder["default"].embedding.weight.shape == (n, hidden)
    ids = torch.tensor([[5, 6, 7]])
    out = _logits(model.eval(), ids)
    assert out.shape == (1, 5 + 3, 100)  # peft returns the virtual tokens' positions too
    assert not torch.allclose(out[:, -3:], _logits(tiny_model(family).eval(), ids), atol=1e-3)


# ---- bottleneck numerics on a single Linear ----

@pytest.mark.parametrize("placement", ["input", "output", "parallel"])
@pytest.mark.parametrize("scaling", [1.0, 2.5, "learned"])
def test_bottleneck_matches_the_reference_formula(placement, scaling):
    torch.manual_seed(1)
    linear = nn.Linear(6, 10)
    cfg = BottleneckConfig(bottleneck_size=4, scaling=scaling)
    layer = BottleneckLinear(linear, placement, cfg)
    assert layer.weight is linear.weight and layer.bias is linear.bias
    x = torch.randn(3, 6)
    down, up = layer.adapter_down.weight, layer.adapter_up.weight
    s = 1.0 if scaling == "learned" else scaling

    def adapter(h):
        return torch.tanh(h @ down.T) @ up.T * s

    W, b = linear.weight, linear.bias
    if placement == "input":
        expected = (x + adapter(x)) @ W.T + b
    elif placement == "output":
        y = x @ W.T + b
        expected = y + adapter(y)
    else:
        expected = x @ W.T + b + adapter(x)
    torch.testing.assert_close(layer(x), expected)
    assert down.shape == (4, 10 if placement == "output" else 6)
    assert up.shape == (6 if placement == "input" else 10, 4)
    if scaling == "learned":
        assert isinstance(layer.adapter_scale, nn.Parameter) and layer.adapter_scale.item() == 1.0
        layer(x).sum().backward()
        assert layer.adapter_scale.grad is not None and layer.adapter_scale.grad.abs().item() > 0


def test_bottleneck_keeps_the_input_dtype_and_computes_in_fp32():
    linear = nn.Linear(8, 8).to(torch.bfloat16)
    layer = BottleneckLinear(linear, "output", BottleneckConfig(bottleneck_size=4))
    assert layer.adapter_down.weight.dtype == torch.float32
    assert layer(torch.randn(2, 8, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_series_placement_follows_the_module_name():
    model = methods.apply(tiny_model("llama"), "series", {"bottleneck_size": 4})
    mlp = model.model.layers[0].mlp
    assert (mlp.gate_proj.placement, mlp.up_proj.placement, mlp.down_proj.placement) == ("input", "input", "output")
    # base parameter names are unchanged, so checkpoints of the base model still load
    assert "model.layers.0.mlp.down_proj.weight" in dict(model.named_parameters())


# ---- validation and errors ----

@pytest.mark.parametrize("method,args,field", [
    ("lora", {"r": 0}, "method_args.r"),
    ("lora", {"alpha": -1}, "method_args.alpha"),
    ("lora", {"dropout": 1.0}, "method_args.dropout"),
    ("lora", {"bias": "some"}, "method_args.bias"),
    ("lora", {"target_modules": []}, "method_args.target_modules"),
    ("prefix", {"num_virtual_tokens": 0}, "method_args.num_virtual_tokens"),
    ("dora", {"r": 0}, "method_args.r"),
    ("dora", {"dropout": -0.5}, "method_args.dropout"),
    ("dora", {"target_modules": ""}, "method_args.target_modules"),
    ("prompt", {"num_virtual_tokens": 0}, "method_args.num_virtual_tokens"),
    ("prompt", {"num_virtual_tokens": True}, "method_args.num_virtual_tokens"),
    ("ia3", {"target_modules": []}, "method_args.target_modules"),
    ("ia3", {"feedforward_modules": [""]}, "method_args.feedforward_modules"),
    ("ia3", {"target_modules": ["k_proj"], "feedforward_modules": ["down_proj"]}, "method_args.feedforward_modules"),
    ("series", {"bottleneck_size": 0}, "method_args.bottleneck_size"),
    ("series", {"non_linearity": "tanhh"}, "method_args.non_linearity"),
    ("parallel", {"scaling": "learnt"}, "method_args.scaling"),
    ("adapterp", {"adapter_dropout": -0.1}, "method_args.adapter_dropout"),
    ("full", {"train_embeddings": "yes"}, "method_args.train_embeddings"),
])
def test_bad_values_name_the_field(method, args, field):
    with pytest.raises(UserError, match=rf"^method {method}: {field}: got"):
        methods.build_config(method, args)


def test_unknown_argument_and_method_suggest_a_fix():
    with pytest.raises(UserError, match=r"unknown argument 'alpah' \(did you mean 'alpha'\?\); allowed: r, alpha"):
        methods.build_config("lora", {"alpah": 32})
    # the sorted list of every method; the `adapters` ones (test_methods_adapters.py) sort in between
    with pytest.raises(UserError, match=r"did you mean 'lora'\?.*allowed: adapterp, .*\bdora, full, ia3, .*\blora, "):
        methods.get("lroa")


def test_target_modules_are_checked_against_the_model():
    assert methods.build_config("lora", {"target_modules": "q_proj, k_proj"}).target_modules == ("q_proj", "k_proj")
    with pytest.raises(UserError, match=r"module 'q_projj' not found.*q_proj"):
        methods.apply(tiny_model("llama"), "lora", {"target_modules": ["q_projj"]})
    with pytest.raises(UserError, match=r"no defined side for 'q_proj'.*allowed: gate_proj, up_proj, down_proj"):
        methods.apply(tiny_model("llama"), "series", {"target_modules": ["q_proj"]})


def test_config_checks_per_family_need_no_model():
    # What the planner asks before loading anything: the config against the model family alone.
    def check(method, family, args):
        methods.check_supported(method, family, methods.build_config(method, args))

    check("ia3", "bert", {"target_modules": ["key", "value"]})
    with pytest.raises(UserError, match=r"^method ia3: no default target_modules for model family 'roberta' "
                                        r"\(defined for llama, bloom, gptj\); set method_args.target_modules$"):
        check("ia3", "roberta", {})
    with pytest.raises(UserError, match=r"^method ia3: method_args.feedforward_modules: q_proj not among"):
        check("ia3", "llama", {"feedforward_modules": ["q_proj"]})
    check("series", "llama", {"target_modules": ["o_proj", "down_proj"]})
    with pytest.raises(UserError, match=r"^method series: .*no defined side for 'fc_in' in a llama model"):
        check("series", "llama", {"target_modules": ["fc_in"]})
    check("parallel", "gptj", {"target_modules": ["q_proj"]})  # parallel adapters have no side to define


def test_encoder_families():
    model = tiny_model("bert")
    assert model_family_of(model) == "bert"
    lora = methods.apply(model, "lora", {})
    assert all("lora_" in n for n, p in lora.named_parameters() if p.requires_grad)
    dora = methods.apply(tiny_model("bert"), "dora", {})
    assert any("lora_magnitude_vector" in n for n, p in dora.named_parameters() if p.requires_grad)
    with pytest.raises(UserError, match="method ia3: no default target_modules for model family 'bert'"):
        methods.apply(tiny_model("bert"), "ia3", {})
    ia3 = methods.apply(tiny_model("bert"), "ia3", {"target_modules": ["key", "value"]})
    assert methods.count_parameters(ia3)[0] == 2 * 2 * 64  # 2 layers x (key, value) x out_features
    from transformers import GPT2Config, GPT2LMHeadModel

    with pytest.raises(UserError, match="model type 'gpt2' is not supported"):
        model_family_of(GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50)))


def test_importing_methods_does_not_import_peft():
    code = "import sys, benchmark.methods as m; assert m.names(); assert 'peft' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


# ---- published trainable-parameter counts, on the meta device (no weights) ----

REAL = {
    "llama-7b": ("llama", {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                           "num_attention_heads": 32, "vocab_size": 32000}),
    "bloom-7b": ("bloom", {"hidden_size": 4096, "n_layer": 30, "n_head": 32, "vocab_size": 250880}),
    "gptj-6b": ("gptj", {"n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64, "vocab_size": 50400}),
}
# (exact count with our defaults, the paper's figure in millions)
PUBLISHED = {
    ("llama-7b", "lora"): (4_194_304, 4.2), ("llama-7b", "series"): (201_326_592, 200),
    ("llama-7b", "adapterp"): (67_108_864, 66), ("llama-7b", "parallel"): (201_326_592, 200),
    ("bloom-7b", "lora"): (3_932_160, 4), ("bloom-7b", "series"): (125_829_120, 125),
    ("bloom-7b", "adapterp"): (62_914_560, 62), ("bloom-7b", "parallel"): (125_829_120, 125),
    ("gptj-6b", "lora"): (3_670_016, 3.7), ("gptj-6b", "series"): (117_440_512, 117),
    ("gptj-6b", "adapterp"): (58_720_256, 58), ("gptj-6b", "parallel"): (176_160_768, 176),
}


@pytest.mark.parametrize("model_name,method", sorted(PUBLISHED))
def test_published_parameter_counts_on_the_meta_device(model_name, method):
    from transformers import AutoConfig, AutoModelForCausalLM

    family, fields = REAL[model_name]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(family, **fields))
    trainable, _ = methods.count_parameters(methods.apply(model, method, {}))
    exact, paper_millions = PUBLISHED[(model_name, method)]
    assert trainable == exact
    assert abs(trainable / 1e6 - paper_millions) / paper_millions < 0.02  # the paper rounds (66M is 64 MiB)


def test_series_after_attention_is_output_side_on_o_proj():
    # Houlsby's "after attention" placement (suites/llm_adapters/placement.yaml): the adapter reads o_proj's output.
    model = methods.apply(tiny_model("llama"), "series", {"bottleneck_size": 4, "target_modules": ["o_proj", "down_proj"]})
    layer = model.model.layers[0]
    assert (layer.self_attn.o_proj.placement, layer.mlp.down_proj.placement) == ("output", "output")
    o_proj = layer.self_attn.o_proj
    x = torch.randn(2, 3, o_proj.in_features)
    y = torch.nn.functional.linear(x, o_proj.weight, o_proj.bias)
    torch.testing.assert_close(o_proj(x), y + o_proj.adapter(y))
    assert not isinstance(layer.self_attn.q_proj, BottleneckLinear)


# ---- dora, ia3, prompt on llama-7b (peft-bench params), from first principles ----

def _llama_7b_counts() -> dict[str, int]:
    h, inter, layers = 4096, 11008, 32  # REAL["llama-7b"]; k_proj/v_proj are h -> h (32 kv heads)
    r, virtual_tokens = 8, 30
    lora = layers * 2 * r * (h + h)  # q_proj, v_proj: A (r x h) + B (h x r)
    return {
        "dora": lora + layers * 2 * h,  # + a magnitude per output feature of q_proj and v_proj
        "ia3": layers * (h + h + inter),  # k_proj, v_proj outputs; down_proj (feedforward) input
        "prompt": virtual_tokens * h,
    }


@pytest.mark.parametrize("method", ["dora", "ia3", "prompt"])
def test_llama_7b_counts_of_the_peft_methods(method):
    from benchmark.params import count_for

    expected = _llama_7b_counts()  # dora 4,456,448; ia3 614,400; prompt 122,880
    got = count_for("llama-7b", method)
    base_total = count_for("llama-7b", "full")["total"]
    assert got["trainable"] == expected[method]
    assert got["total"] == base_total + expected[method]


def test_params_command_prices_dora_on_the_meta_device():
    import json
    out = subprocess.run([sys.executable, "-m", "benchmark", "params", "--model", "llama-7b", "--method", "dora", "--json"],
                         check=True, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    row = json.loads(out.stdout)
    assert (row["method"], row["trainable"]) == ("dora", _llama_7b_counts()["dora"])
