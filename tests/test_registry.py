"""Suites as data: every file under suites/ loads; expansion is stable; bad input gets one clear line."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from benchmark import planner
from benchmark.errors import UserError
from benchmark.paths import SUITES_DIR
from benchmark.registry import catalogue, expand, parse_suite, plan, suite_files
from benchmark.registry.spec import TrainConfig, TrialSpec


def test_every_yaml_under_suites_loads():
    files = sorted(SUITES_DIR.rglob("*.yaml"))
    assert files, "suites/ is empty"
    models, datasets = catalogue.models(), catalogue.datasets()
    assert {"tiny-llama", "tiny-bloom", "tiny-gptj", "tiny-bert", "tiny-roberta"} <= set(models)
    assert {"gsm8k", "AQuA", "mawps", "boolq", "emb-gsm8k"} <= set(datasets)
    for file in files:
        yaml.safe_load(file.read_text())  # baselines and catalogues: at least valid YAML
    for file in suite_files():
        assert planner.plan(str(file))[1], file  # every trial resolves: methods, task kinds, metrics


def test_smoke_plan_is_stable_and_ids_unique():
    _, first = plan("smoke")
    _, second = plan(str(SUITES_DIR / "smoke.yaml"))
    assert [s.trial_id for s in first] == [s.trial_id for s in second]
    assert len({s.trial_id for s in first}) == len(first) == 12
    assert {s.method for s in first} == {"full", "lora", "prefix", "series", "adapterp", "parallel"}


def test_trial_id_changes_with_any_setting_and_only_then():
    _, specs = plan("smoke", ["method=lora", "task=math"])
    (spec,) = specs
    same = TrialSpec.from_dict(spec.to_dict())
    assert same.trial_id == spec.trial_id
    import dataclasses

    for change in ({"train": dataclasses.replace(spec.train, learning_rate=1e-4)},
                   {"method_args": {**spec.method_args, "r": 4}}, {"model": "tiny-gptj"},
                   {"eval_data": spec.eval_data[:1]},
                   # the loop's packing and clipping change results, so they are part of the id even at
                   # their defaults (not in _ADDED_LATER): trials stored before them are not reused as theirs
                   {"train": dataclasses.replace(spec.train, packing=False)},
                   {"train": dataclasses.replace(spec.train, max_grad_norm=None)}):
        assert dataclasses.replace(spec, **change).trial_id != spec.trial_id
    assert {"packing", "max_grad_norm"} <= set(spec.identity()["train"])
    # Resources and display fields do not change what a trial computes.
    assert dataclasses.replace(spec, cell={"x": "y"}).trial_id == spec.trial_id


def test_model_family_hashes_and_reads_under_its_first_name():
    (spec,) = plan("smoke", ["method=lora", "task=math"])[1]
    assert spec.identity()["family"] == spec.model_family == "llama" and "model_family" not in spec.identity()
    stored = spec.to_dict()
    stored["family"] = stored.pop("model_family")  # a spec stored before the rename
    old = TrialSpec.from_dict(stored)
    assert old == spec and old.trial_id == spec.trial_id


def test_adapt_stages_are_parsed_once_into_the_spec():
    from benchmark.registry.stages import AdaptStage

    specs = plan("pt_unipelt/domain", ["stages=dapt_tapt", "task=chemprot"])[1]
    stages = specs[0].adapt
    assert all(isinstance(stage, AdaptStage) for stage in stages) and [s.kind for s in stages] == ["dapt", "tapt"]
    assert TrialSpec.from_dict(specs[0].to_dict()).adapt == stages


def test_overrides_apply_in_order_and_when_lists_match():
    _, specs = plan("smoke", ["task=commonsense"])
    by_method = {s.method: s for s in specs}
    assert by_method["prefix"].train.learning_rate == 3e-2
    assert by_method["prefix"].method_args == {"num_virtual_tokens": 10}
    assert by_method["series"].method_args == {"bottleneck_size": 32}
    assert by_method["full"].train.learning_rate == 1e-3
    assert by_method["lora"].eval.max_new_tokens == 16


def _write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "suite.yaml"
    file.write_text(textwrap.dedent(text))
    return file


BASE = """
name: t
version: "1"
defaults:
  model: tiny-llama
  method: lora
  train_data: emb-math_10k
  eval_data: [emb-gsm8k]
"""


@pytest.mark.parametrize("extra, needle", [
    ("grid:\n  method: [lora, lorax]\n", "method: method 'lorax' is not known (did you mean 'lora'?)"),
    ("grid:\n  model: [tiny-lama]\n", "did you mean 'tiny-llama'?"),
    ("grid:\n  train.learnig_rate: [1]\n", "did you mean 'learning_rate'?"),
    ("grid:\n  train.learning_rate: [-1.0]\n", "train.learning_rate: got -1.0"),
    ("grid:\n  train.batch_size: ['16']\n", "train.batch_size: got '16'; allowed: an integer"),
    ("grid:\n  method: []\n", "grid.method: got []"),
    ("colour: red\n", "colour: unknown key"),
    ("grid:\n  eval_data: [[nosuch]]\n", "unknown dataset 'nosuch'"),
    ("grid:\n  train_data: [emb-gsm8k]\n", "is an evaluation set"),
    ("exclude:\n  - {method: lora}\n", "every cell is excluded"),
    ("overrides:\n  - when: {methd: lora}\n    set: {train.epochs: 1}\n", "did you mean 'method'?"),
    ("grid:\n  method_args.r: [0]\n", "method_args"),
    ("grid:\n  resources.cpus: [1, 2]\n", "resolves to the same trial"),
    ("grid:\n  adapt: [[{kind: tapt, corpus: emb-corpus-cs}]]\n", "adapt[0].corpus: got 'emb-corpus-cs'; allowed: null"),
    ("grid:\n  adapt: [[{knd: tapt}]]\n", "adapt[0].knd: unknown key"),
])
def test_bad_suites_fail_with_one_line_naming_file_and_field(tmp_path, extra, needle):
    file = _write(tmp_path, BASE + extra)
    with pytest.raises(UserError) as info:
        planner.plan(str(file))  # as `peft-bench validate` does: expanded, then every trial resolved
    message = str(info.value)
    assert "\n" not in message
    assert str(file) in message
    assert needle in message, message


def test_huge_grid_is_refused_before_expansion(tmp_path):
    axis = "[" + ", ".join(str(i) for i in range(400)) + "]"
    file = _write(tmp_path, BASE + f"grid:\n  train.seed: {axis}\n  train.warmup_steps: {axis}\n")
    with pytest.raises(UserError, match="at most 100000"):
        expand(parse_suite(file))


def test_contaminated_training_set_is_refused_unless_forced(tmp_path):
    text = BASE.replace("emb-math_10k", "math_data").replace("emb-gsm8k", "gsm8k")
    with pytest.raises(UserError, match="holds test items of gsm8k"):
        expand(parse_suite(_write(tmp_path, text)))
    assert expand(parse_suite(_write(tmp_path, text + "allow_contaminated_train: true\n")))


def test_train_config_validates_in_post_init():
    with pytest.raises(ValueError, match="train.micro_batch_size"):
        TrainConfig(batch_size=4, micro_batch_size=8)


def test_cli_user_error_is_one_line_without_traceback(tmp_path):
    file = _write(tmp_path, BASE + "grid:\n  method: [lorra]\n")
    proc = subprocess.run([sys.executable, "-m", "benchmark", "plan", str(file)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "did you mean 'lora'" in proc.stderr


def test_cli_plan_prints_trial_table():
    proc = subprocess.run([sys.executable, "-m", "benchmark", "plan", "smoke", "--filter", "method=lora"],
                          capture_output=True, text=True, check=True)
    assert "trial_id" in proc.stdout and "2 trials in smoke" in proc.stdout


# ---- the LLM-Adapters ablations (suites/llm_adapters/placement.yaml, hparams.yaml) ----

ABLATION_TRIALS = {"llm_adapters/placement": 9, "llm_adapters/hparams": 16}


@pytest.mark.parametrize("name", sorted(ABLATION_TRIALS))
def test_llm_adapters_ablations_expand_like_the_math_suite(name):
    _, specs = plan(name)
    _, math = plan("llm_adapters/math", ["model=llama-7b", "method=lora"])
    assert len(specs) == len({s.trial_id for s in specs}) == ABLATION_TRIALS[name]
    assert {(s.model, s.train_data, s.eval_data, s.eval) for s in specs} == \
        {("llama-7b", "math_10k", math[0].eval_data, math[0].eval)}
    # one grid axis whose values are readable labels, unique per cell
    labels = [tuple(s.cell.values()) for s in specs]
    assert all(len(label) == 1 and "=" not in label[0] for label in labels)
    assert len(set(labels)) == len(labels)


def test_every_ablation_target_module_exists_in_llama_with_a_defined_side():
    import torch
    from transformers import AutoModelForCausalLM

    from benchmark import methods
    from benchmark.methods.bottleneck import SERIES_SIDE
    from benchmark.methods.family import resolve_targets
    from benchmark.params import model_config

    with torch.device("meta"):
        llama = AutoModelForCausalLM.from_config(model_config(catalogue.model("llama-7b")))
    checked = 0
    for name in ABLATION_TRIALS:
        for spec in plan(name)[1]:
            targets = getattr(methods.build_config(spec.method, spec.method_args), "target_modules", None)
            if spec.method == "prefix":
                assert targets is None
                continue
            assert targets, spec.cell
            assert resolve_targets(llama, targets, {}, spec.method) == targets
            if spec.method == "series":
                assert set(targets) <= set(SERIES_SIDE["llama"]), spec.cell
            checked += 1
    assert checked == 9 + 12


def test_placement_cells_count_as_their_parts_on_the_meta_device():
    from benchmark.params import count_for

    specs = {s.cell["placement"]: s for s in plan("llm_adapters/placement")[1]}
    trainable = {label: count_for(s.model, s.method, s.method_args)["trainable"] for label, s in specs.items()}
    layers, hidden, bottleneck = 32, 4096, 256
    # series after attention (o_proj) and after the MLP (down_proj): one hidden -> 256 -> hidden adapter per layer
    assert trainable["series-attn"] == trainable["series-mlp"] == layers * 2 * hidden * bottleneck
    assert trainable["parallel-attn"] == 201_326_592  # the published Parallel count (q, k, v at 256)
    for method in ("series", "parallel", "lora"):  # attention and MLP targets are disjoint: both = attn + mlp
        assert trainable[f"{method}-both"] == trainable[f"{method}-attn"] + trainable[f"{method}-mlp"]


# The value each hparams cell sweeps; every other argument and the training settings are shared per method.
SWEPT = {"series": ("bottleneck_size",), "parallel": ("bottleneck_size",), "lora": ("r", "alpha"),
         "prefix": ("num_virtual_tokens",)}


def test_hparams_sweeps_one_value_per_adapter_and_keeps_the_rest():
    import dataclasses
    import json

    by_method = {}
    for spec in plan("llm_adapters/hparams")[1]:
        by_method.setdefault(spec.method, []).append(spec)
    assert set(by_method) == set(SWEPT)
    swept = {m: [[s.method_args[k] for k in SWEPT[m]] for s in specs] for m, specs in by_method.items()}
    assert swept["series"] == swept["parallel"] == [[64], [128], [256], [512]]
    assert swept["lora"] == [[4, 8], [8, 16], [16, 32], [32, 64]]  # alpha = 2r
    assert swept["prefix"] == [[10], [20], [30], [40]]
    for method, specs in by_method.items():
        fixed = {json.dumps([{k: v for k, v in s.method_args.items() if k not in SWEPT[method]},
                             dataclasses.asdict(s.train)], sort_keys=True) for s in specs}
        assert len(fixed) == 1, (method, fixed)
    # the best placements of the placement ablation, and the command table's prefix settings
    assert by_method["series"][0].method_args["target_modules"] == ["down_proj"]
    assert by_method["parallel"][0].method_args["target_modules"] == ["up_proj", "down_proj"]
    assert by_method["lora"][0].method_args["target_modules"] == ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
    assert by_method["prefix"][0].train.learning_rate == 3e-2 and by_method["prefix"][0].train.epochs == 5


@pytest.mark.parametrize("name", sorted(ABLATION_TRIALS))
def test_ablations_rehearse_on_the_embedded_twins(name):
    _, real = plan(name)
    _, specs = plan(name, embedded=True)
    assert len(specs) == len(real)
    assert [s.cell for s in specs] == [s.cell for s in real]
    assert {s.suite for s in specs} == {f"{name}-embedded"}
    assert {s.model for s in specs} == {"tiny-llama"}
    assert {s.train_data for s in specs} == {"emb-math_10k"}
    assert all(d.startswith("emb-") for s in specs for d in s.eval_data)
    assert [s.method_args for s in specs] == [s.method_args for s in real]
