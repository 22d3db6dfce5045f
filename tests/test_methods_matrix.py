"""The generic method matrix, built from the method registry: every registered method on every model family it
declares, each on a tiny random model of that family. A method registered without a family, or whose inject,
training step, parameter accounting or decoding breaks on a family it declares, fails here; so does a family it
does not declare that `apply` would accept. Method-specific semantics live in test_methods.py and
test_methods_adapters.py."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

from benchmark import methods
from benchmark.checks import check, is_number
from benchmark.errors import UserError
from benchmark.evaluation.generate import generate_ids, generate_ids_hf
from benchmark.registry.catalogue import CAUSAL_FAMILIES, FAMILIES
from tests.test_evaluation_generate import word_prompts, word_tokenizer

VOCAB = 100
# Arguments a (method, family) cell needs beyond the defaults: ia3 has no default targets on the encoders.
ARGS = {("ia3", "bert"): {"target_modules": ["key", "value"]}, ("ia3", "roberta"): {"target_modules": ["key", "value"]}}
# Encoder methods whose outputs move with the batch's padding, as the `adapters` library computes them (a known
# property, checked as such so that a fix upstream shows here): UniPELT's gates average over every position, pads
# included; its prompt tuning lets pads shift the real tokens.
PADDING_DEPENDENT = {"unipelt", "pt_unipelt", "ia3_prefix_bottleneck", "unipelt_stack3", "adapters_prompt"}


def matrix() -> list[tuple[str, str]]:
    """(method, model family) for every registered method and every family it declares."""
    return [(name, family) for name in methods.names() for family in methods.get(name).model_families]


# Other architectures of the llama family (`family: auto`): their layers carry LLaMA's module names. Mistral with
# grouped-query attention; Qwen2 with attention biases, grouped-query attention and tied embeddings.
LLAMA_LAYOUTS = {
    "mistral": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "max_position_embeddings": 128, "tie_word_embeddings": False},
    "qwen2": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 128, "tie_word_embeddings": True},
}


def llama_layout_cells() -> list[tuple[str, str]]:
    """(method, architecture) for every method of the llama family on every other LLaMA-layout architecture."""
    return [(name, arch) for name in methods.names() if "llama" in methods.get(name).model_families
            for arch in LLAMA_LAYOUTS]


def tiny(family: str, arch: str | None = None):
    """A random tiny model of the family (or of `arch`, another architecture of the llama family): causal LMs with
    their LM head, encoders bare (as `params` counts them)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    shapes = {**LLAMA_LAYOUTS,
        "llama": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "num_key_value_heads": 4, "max_position_embeddings": 128},
        "bloom": {"hidden_size": 64, "n_layer": 2, "n_head": 4},
        "gptj": {"n_embd": 64, "n_layer": 2, "n_head": 4, "rotary_dim": 8, "n_positions": 128},
        "bert": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "max_position_embeddings": 64},
        "roberta": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "max_position_embeddings": 64, "pad_token_id": 1},
    }
    ids = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    config = AutoConfig.for_model(arch or family, vocab_size=VOCAB, **{**ids, **shapes[arch or family]})
    torch.manual_seed(0)
    auto = AutoModelForCausalLM if family in CAUSAL_FAMILIES else AutoModel
    return auto.from_config(config).float().eval()


def output(model, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (causal LMs) or last hidden states (encoders) of the ids' own positions (prompt methods prepend more)."""
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids) if mask is None else mask)
    values = out.logits if hasattr(out, "logits") else out.last_hidden_state
    return values[:, -ids.shape[1]:]


def perturb_trainable(model, seed: int = 1) -> None:
    """Move the trainable weights off their init (often a no-op: LoRA's B = 0, (IA)^3's ones)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator) * 0.05)


def sgd_step(model, ids: torch.Tensor) -> None:
    """One training step on a fixed random projection of the outputs (every output position pulls on the method)."""
    model.train()
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    values = out.logits if hasattr(out, "logits") else out.last_hidden_state
    weights = torch.randn(values.shape, generator=torch.Generator().manual_seed(2))  # not pow(2): LayerNorm fixes that
    (values * weights).sum().backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    model.eval()


def check_cell(method: str, family: str, arch: str | None = None) -> None:
    """Inject; then, for a method that trains (Method.trains), check_training, else check_trains_nothing; the model
    decodes (fast path, with the method's hook) as transformers does one by one."""
    base = tiny(family, arch)
    _, base_total = methods.count_parameters(base)
    base_ids = {id(p) for p in base.parameters()}
    ids = torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = output(base, ids)

    model = methods.apply(base, method, ARGS.get((method, family), {}))
    if methods.get(method).trains:
        check_training(model, ids, plain, base_ids, base_total)
    else:
        check_trains_nothing(model, ids, plain, base_total)

    if family in CAUSAL_FAMILIES:
        check_decoding(model, methods.get(method).decode_hook)
    else:
        check_padding(model, padding_dependent=method in PADDING_DEPENDENT)


def check_trains_nothing(model, ids: torch.Tensor, plain: torch.Tensor, base_total: int) -> None:
    """A method declared not to train (zero-shot) freezes every weight, adds none and leaves the output exactly as
    the base model's: the runner then has nothing to train."""
    assert methods.count_parameters(model) == (0, base_total)
    with torch.no_grad():
        torch.testing.assert_close(output(model.eval(), ids), plain, atol=0, rtol=0)


def check_training(model, ids: torch.Tensor, plain: torch.Tensor, base_ids: set, base_total: int) -> None:
    """Count; the method's parameters change the output; a training step changes only them; restoring them restores
    the model."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "nothing trains"
    n_trainable, total = methods.count_parameters(model)
    assert n_trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    added = [p for p in model.parameters() if id(p) not in base_ids]
    assert total == base_total + sum(p.numel() for p in added)  # each parameter counted once; the base is all there
    assert all(p.requires_grad for p in added), "the method adds parameters that do not train"

    perturb_trainable(model)
    with torch.no_grad():
        before = output(model.eval(), ids)
    assert not torch.allclose(before, plain, atol=1e-4), "the method's parameters do not reach the output"

    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    sgd_step(model, ids)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, saved[n])}
    assert changed and changed <= trainable, changed - trainable
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    # What training keeps (its best epoch) is the trainable parameters: putting them back restores the model.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(saved[n])
        torch.testing.assert_close(output(model, ids), before, atol=0, rtol=0)


def check_decoding(model, hook) -> None:
    """The fast path (batched, left-padded, with the method's decode hook) gives transformers' tokens one by one."""
    tok, prompts = word_tokenizer(VOCAB), word_prompts((3, 8, 5))
    with torch.inference_mode():
        ours = generate_ids(model, tok, prompts, max_new_tokens=4, num_beams=2, batch_size=3, decode_hook=hook)
        reference = generate_ids_hf(model, tok, prompts, 4, 2, batch_size=1)
    assert ours == reference


def check_padding(model, padding_dependent: bool) -> None:
    """Right padding (the encoders' tasks pad on the right) leaves the real tokens' outputs as they are unpadded
    (or, for a method known to depend on padding, changes them)."""
    rows = [[5, 6, 7, 8, 9], [10, 11, 12]]
    ids = torch.tensor([r + [0] * (5 - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (5 - len(r)) for r in rows])
    with torch.no_grad():
        padded = output(model, ids, mask)
        alone = output(model, torch.tensor([rows[1]]))[0]
    assert torch.isfinite(padded).all()
    assert torch.allclose(padded[1, :len(rows[1])], alone, atol=1e-5, rtol=1e-5) != padding_dependent


@pytest.mark.parametrize("method,family", matrix(), ids=[f"{m}-{f}" for m, f in matrix()])
def test_every_registered_method_on_every_family_it_declares(method, family):
    check_cell(method, family)


@pytest.mark.parametrize("method,arch", llama_layout_cells(), ids=[f"{m}-{a}" for m, a in llama_layout_cells()])
def test_every_llama_method_on_the_other_llama_layouts(method, arch):
    model = tiny("llama", arch)
    assert model.config.model_type == arch and methods.model_family_of(model) == "llama"
    check_cell(method, "llama", arch)


def test_the_matrix_is_the_registry():
    cells = matrix()
    assert {m for m, _ in cells} == set(methods.names())  # every method declares at least one family
    assert all(f in FAMILIES for _, f in cells)
    assert set(ARGS) <= set(cells)  # no arguments for a cell that no longer exists
    assert PADDING_DEPENDENT <= {m for m, f in cells if f not in CAUSAL_FAMILIES}


@pytest.mark.parametrize("method", methods.names())
def test_apply_refuses_every_family_a_method_does_not_declare(method):
    declared = methods.get(method).model_families
    for family in (f for f in FAMILIES if f not in declared):
        with pytest.raises(UserError, match=rf"^method {method} does not support model family '{family}'; "
                                            rf"it supports: {', '.join(declared)}$"):
            methods.apply(tiny(family), method)


def test_check_supported_is_one_line_naming_what_is_supported():
    methods.check_supported("lora", "roberta")
    with pytest.raises(UserError) as err:
        methods.check_supported("prefix", "roberta")
    assert str(err.value) == "method prefix does not support model family 'roberta'; it supports: llama, bloom, gptj"
    with pytest.raises(UserError, match=r"method 'prefx' is not known \(did you mean 'prefix'\?\)"):
        methods.check_supported("prefx", "llama")


def test_a_method_must_declare_known_families():
    for families in ((), ("llama", "t5"), ["llama"]):
        with pytest.raises(ValueError, match="model_families"):
            methods.register(methods.Method("no_families", ScaleConfig, inject_scale, library="torch",
                                            model_families=families))
    assert "no_families" not in methods.names()


# ---- a method registered here, outside benchmark/, runs through the same matrix ----

@dataclass(frozen=True)
class ScaleConfig:
    init: float = 1.0  # the learned scale's starting value

    def __post_init__(self):
        check(is_number(self.init), "init", self.init, "a number")


class ScaledNorm(nn.Module):
    def __init__(self, norm: nn.Module, init: float):
        super().__init__()
        self.norm, self.scale = norm, nn.Parameter(torch.full((1,), float(init)))

    def forward(self, hidden):
        return self.norm(hidden) * self.scale


def inject_scale(model, cfg: ScaleConfig):
    """Freeze the model; the last normalisation layer's output gets one trainable scale."""
    for p in model.parameters():
        p.requires_grad_(False)
    name = [n for n, m in model.named_modules() if n and "norm" in type(m).__name__.lower()][-1]
    parent, _, leaf = name.rpartition(".")
    holder = model.get_submodule(parent) if parent else model
    setattr(holder, leaf, ScaledNorm(getattr(holder, leaf), cfg.init))
    return model


@pytest.fixture
def scale_last_norm():
    name = "test_scale_last_norm"
    methods.register(methods.Method(name, ScaleConfig, inject_scale, library="torch", model_families=FAMILIES,
                                    description="a learned scale after the last norm (registered by a test)"))
    yield name
    methods.unregister(name)
    assert name not in methods.names()


def test_a_method_registered_by_a_test_runs_through_the_generic_matrix(scale_last_norm):
    cells = [(m, f) for m, f in matrix() if m == scale_last_norm]
    assert [f for _, f in cells] == list(FAMILIES)
    for method, family in cells:
        check_cell(method, family)
    assert methods.count_parameters(methods.apply(tiny("llama"), scale_last_norm, {"init": 2.0}))[0] == 1
    with pytest.raises(UserError, match=rf"^method {scale_last_norm}: method_args.init: got 'x'"):
        methods.build_config(scale_last_norm, {"init": "x"})


def _freeze_all(model, cfg):
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.mark.parametrize("inject,trains", [(_freeze_all, True), (lambda model, cfg: model, False),
                                           (inject_scale, False)],
                         ids=["declares-training-trains-nothing", "declares-none-leaves-all-trainable",
                              "declares-none-adds-a-scale"])
def test_a_cell_fails_when_the_method_does_not_do_what_it_declares_about_training(inject, trains):
    name = "test_declared_training"
    methods.register(methods.Method(name, ScaleConfig, inject, library="torch", model_families=FAMILIES,
                                    trains=trains))
    try:
        with pytest.raises(AssertionError):
            check_cell(name, "llama")
    finally:
        methods.unregister(name)


def test_trains_must_be_a_bool():
    with pytest.raises(ValueError, match=r"^method bad_trains: trains: got 'no'; allowed: true or false$"):
        methods.register(methods.Method("bad_trains", ScaleConfig, _freeze_all, library="torch",
                                        model_families=FAMILIES, trains="no"))
    assert "bad_trains" not in methods.names()
