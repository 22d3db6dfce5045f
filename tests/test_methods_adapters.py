"""Methods through `adapters` (UniPELT, PT+UniPELT, their variants and components) and BitFit, on encoders:
the PT+UniPELT paper's exact counts on RoBERTa-base, the components' counts from first principles, and which
parameters each trains on tiny BERT/RoBERTa built here from configs (the generic checks of every method x family
are test_methods_matrix.py's)."""

import json
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from benchmark import methods
from benchmark.errors import UserError
from benchmark.params import count_for
from benchmark.registry.catalogue import ENCODER_FAMILIES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADAPTERS_METHODS = ("unipelt", "pt_unipelt", "ia3_prefix_bottleneck", "unipelt_stack3",
                    "adapters_bottleneck", "adapters_prefix", "adapters_lora", "adapters_prompt")
ALL = ADAPTERS_METHODS + ("bitfit",)
ENCODERS = ENCODER_FAMILIES
HIDDEN = 64

# ---- the PT+UniPELT paper's trainable counts (docs/protocols/pt-unipelt.md), RoBERTa-base without a head ----

ROBERTA_BASE_TOTAL = 124_645_632
PAPER = {  # method: (trainable, the paper's %)
    "unipelt": (11_083_376, 8.892),
    "pt_unipelt": (11_091_056, 8.898),
    "ia3_prefix_bottleneck": (10_852_988, 8.707),
    "unipelt_stack3": (33_250_128, 26.68),
}


@pytest.mark.parametrize("method", sorted(PAPER))
def test_the_papers_counts_on_roberta_base(method):
    row = count_for("roberta-base", method)
    trainable, pct = PAPER[method]
    assert row["trainable"] == trainable
    assert row["base_total"] == ROBERTA_BASE_TOTAL and row["model_class"] == "RobertaModel" and row["head"] is None
    assert row["total"] == ROBERTA_BASE_TOTAL + trainable  # the encoder is frozen; the adapter adds what trains
    assert round(row["trainable_pct_of_base"], len(str(pct).split(".")[1])) == pct


def test_params_command_reproduces_pt_unipelt():
    out = subprocess.run([sys.executable, "-m", "benchmark", "params", "--model", "roberta-base", "--method",
                          "pt_unipelt", "--json"], check=True, capture_output=True, text=True, cwd=ROOT)
    row = json.loads(out.stdout)
    assert (row["method"], row["trainable"], row["head"]) == ("pt_unipelt", 11_091_056, None)


# ---- the parts, from first principles (base models: 12 layers, hidden 768, FFN 3072) ----

L, H, FF = 12, 768, 3072
GATE = H + 1  # adapters' gate: Linear(hidden, 1)
PREFIX_MLP = 10 * H + (H * 512 + 512) + (512 * L * 2 * H + L * 2 * H)  # embedding, Linear(768,512), Linear(512,2LH)
BOTTLENECK = L * (H * 48 + 48 + 48 * H + H)  # reduction 16: 768 -> 48 -> 768 after the FFN
LORA = L * 2 * 8 * (H + H)  # r=8 on Q and V
IA3 = L * (H + H + FF)  # K, V, the FFN intermediate
PARTS = {  # (model, method, args): (exact, UniPELT Table 4's rounded thousands on BERT-base or None)
    ("roberta-base", "adapters_prefix", ()): (PREFIX_MLP, None),  # 9,857,024: the ~9.86M MLP of the reference
    ("roberta-base", "adapters_prompt", ()): (10 * H, None),
    ("bert-base", "adapters_bottleneck", ()): (BOTTLENECK, 895),
    ("bert-base", "adapters_lora", ()): (LORA, 295),
    ("bert-base", "adapters_prefix", (("flat", True),)): (L * 2 * 10 * H, 184),  # the prefix vectors alone
    ("bert-base", "bitfit", ()): (L * (4 * H + H + FF + H + H) + H + H, 103),  # + embedding LayerNorm, pooler
    ("roberta-base", "unipelt", ()): (PREFIX_MLP + BOTTLENECK + LORA + L * 4 * GATE, None),  # gates: prefix, adapter, Q, V
    ("roberta-base", "ia3_prefix_bottleneck", ()): (PREFIX_MLP + BOTTLENECK + IA3 + L * 5 * GATE, None),
}


@pytest.mark.parametrize("model_name,method,args", sorted(PARTS))
def test_component_counts_from_first_principles(model_name, method, args):
    exact, table4_k = PARTS[(model_name, method, args)]
    row = count_for(model_name, method, dict(args))
    assert row["trainable"] == exact
    added = 0 if method == "bitfit" else exact
    assert row["total"] == row["base_total"] + added
    if table4_k is not None:
        assert round(exact / 1000) == table4_k


def test_pt_unipelt_is_unipelt_plus_the_prompt_and_the_stack_is_three_unipelts():
    unipelt = count_for("roberta-base", "unipelt")["trainable"]
    assert count_for("roberta-base", "pt_unipelt")["trainable"] == unipelt + 10 * H
    assert count_for("roberta-base", "unipelt_stack3")["trainable"] == 3 * unipelt


def test_with_head_counts_a_classification_head():
    row = count_for("roberta-base", "unipelt", with_head=True)
    head = 768 * 768 + 768 + 768 * 2 + 2  # RobertaClassificationHead: dense + out_proj (2 labels)
    assert row["head"] == {"kind": "sequence-classification", "class": "RobertaForSequenceClassification",
                           "parameters": head, "num_labels": 2}
    assert row["trainable"] == PAPER["unipelt"][0] + head
    row = count_for("bert-base", "adapters_lora", with_head=True)  # BERT's pooler is in the (frozen) encoder
    assert (row["head"]["parameters"], row["trainable"]) == (768 * 2 + 2, LORA + 768 * 2 + 2)


def test_causal_models_keep_their_lm_head_and_counts():
    row = count_for("llama-7b", "lora")
    assert row["trainable"] == 4_194_304 and row["model_class"] == "LlamaForCausalLM"
    assert row["head"] == {"kind": "causal-lm", "class": "LlamaForCausalLM", "parameters": 32000 * 4096}


def test_default_configs_are_the_papers():
    from adapters import ConfigUnion, IA3Config, PrefixTuningConfig, PromptTuningConfig, SeqBnConfig, UniPELTConfig

    def built(name):
        return methods.build_config(name, {}).adapters_config().to_dict()

    assert built("unipelt") == UniPELTConfig().to_dict()
    assert built("pt_unipelt") == ConfigUnion(PromptTuningConfig(prompt_length=10), *UniPELTConfig().configs).to_dict()
    assert built("ia3_prefix_bottleneck") == ConfigUnion(
        IA3Config(use_gating=True), PrefixTuningConfig(prefix_length=10, use_gating=True),
        SeqBnConfig(reduction_factor=16, use_gating=True)).to_dict()


# ---- tiny encoders, built here ----

def tiny_config(family: str):
    from transformers import BertConfig, RobertaConfig

    shape = {"hidden_size": HIDDEN, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "vocab_size": 100, "max_position_embeddings": 64}
    if family == "bert":
        return BertConfig(pad_token_id=0, **shape)
    return RobertaConfig(pad_token_id=1, bos_token_id=0, eos_token_id=2, **shape)


def tiny(family: str, head: bool = False):
    from transformers import AutoModel, AutoModelForSequenceClassification

    torch.manual_seed(0)
    return (AutoModelForSequenceClassification if head else AutoModel).from_config(tiny_config(family))


def is_method_param(name: str, method: str) -> bool:
    if method == "bitfit":
        return name.endswith(".bias")
    adapters = [f"{method}_{i}" for i in range(3)] if method == "unipelt_stack3" else [method]
    return any(f".{a}." in f".{name}." for a in adapters)  # adapters names each parameter after its adapter


@pytest.mark.parametrize("family", ENCODERS)
@pytest.mark.parametrize("method", ALL)
def test_only_the_methods_parameters_train(method, family):
    _, base_total = methods.count_parameters(tiny(family))
    model = methods.apply(tiny(family), method)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and trainable == {n for n, _ in model.named_parameters() if is_method_param(n, method)}
    n_trainable, total = methods.count_parameters(model)
    assert total == base_total + (0 if method == "bitfit" else n_trainable)


@pytest.mark.parametrize("family", ENCODERS)
@pytest.mark.parametrize("method", ["unipelt", "pt_unipelt", "bitfit"])
def test_a_task_head_trains_with_the_method_and_the_encoder_stays_frozen(method, family):
    model = methods.apply(tiny(family, head=True), method)
    base = {id(p) for p in model.base_model.parameters()}
    frozen_encoder = [n for n, p in model.named_parameters() if id(p) in base and not is_method_param(n, method)]
    assert frozen_encoder and not any(dict(model.named_parameters())[n].requires_grad for n in frozen_encoder)
    head = [p for p in model.parameters() if id(p) not in base]
    assert head and all(p.requires_grad for p in head)
    ids = torch.randint(3, 100, (2, 7))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1]))
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in head)


def test_the_stack_trains_three_equal_unipelts():
    model = methods.apply(tiny("roberta"), "unipelt_stack3")
    assert str(model.active_adapters) == "Stack[unipelt_stack3_0, unipelt_stack3_1, unipelt_stack3_2]"
    per = [sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and f".unipelt_stack3_{i}." in n)
           for i in range(3)]
    single = methods.count_parameters(methods.apply(tiny("roberta"), "unipelt"))[0]
    assert per == [single] * 3


def test_injecting_twice_is_refused():
    model = methods.apply(tiny("bert"), "unipelt")
    with pytest.raises(UserError, match=r"^method unipelt: the model already has adapter 'unipelt'"):
        methods.apply(model, "unipelt")


# ---- errors ----

@pytest.mark.parametrize("method,args,field", [
    ("unipelt", {"prefix_length": 0}, "prefix_length"),
    ("unipelt", {"prefix_bottleneck_size": 1.5}, "prefix_bottleneck_size"),
    ("unipelt", {"reduction_factor": 0}, "reduction_factor"),
    ("unipelt", {"lora_r": True}, "lora_r"),
    ("unipelt", {"lora_alpha": -2}, "lora_alpha"),
    ("pt_unipelt", {"prompt_length": 0}, "prompt_length"),
    ("pt_unipelt", {"lora_r": 0}, "lora_r"),
    ("ia3_prefix_bottleneck", {"prefix_length": "10"}, "prefix_length"),
    ("ia3_prefix_bottleneck", {"reduction_factor": -16}, "reduction_factor"),
    ("unipelt_stack3", {"prefix_length": -1}, "prefix_length"),
    ("adapters_bottleneck", {"reduction_factor": "16"}, "reduction_factor"),
    ("adapters_bottleneck", {"use_gating": "yes"}, "use_gating"),
    ("adapters_prefix", {"flat": 1}, "flat"),
    ("adapters_prefix", {"bottleneck_size": 0}, "bottleneck_size"),
    ("adapters_lora", {"r": 0}, "r"),
    ("adapters_lora", {"dropout": 1.0}, "dropout"),
    ("adapters_lora", {"attn_matrices": ["q", "o"]}, "attn_matrices"),
    ("adapters_lora", {"attn_matrices": []}, "attn_matrices"),
    ("adapters_prompt", {"prompt_length": 0}, "prompt_length"),
])
def test_bad_values_name_the_field(method, args, field):
    with pytest.raises(UserError, match=rf"^method {method}: method_args.{field}: got"):
        methods.build_config(method, args)


def test_unknown_arguments_name_the_field():
    with pytest.raises(UserError, match=r"^method bitfit: unknown argument 'rate'; allowed: none"):
        methods.build_config("bitfit", {"rate": 1})
    with pytest.raises(UserError, match=r"unknown argument 'prompt_lenght' \(did you mean 'prompt_length'\?\)"):
        methods.build_config("pt_unipelt", {"prompt_lenght": 5})
    assert methods.build_config("adapters_lora", {"attn_matrices": "q,k,v"}).attn_matrices == ("q", "k", "v")


def test_importing_methods_does_not_import_adapters():
    code = "import sys, benchmark.methods as m; assert 'unipelt' in m.names(); assert 'adapters' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
