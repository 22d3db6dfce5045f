"""peft-bench perf: a tiny run gives identical evaluation outputs and every JSON key; GPU helpers on CPU."""

import json
from dataclasses import replace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from benchmark import device as gpu
from benchmark.cli import build_parser
from benchmark.perf import control, report, settings, suite


def test_tiny_perf_run_outputs_identical_and_json_keys(tmp_path):
    figures = suite.run(settings.TINY, log=lambda *_: None)
    assert figures["eval"]["outputs_identical"] is True
    for section, key in [("eval", "speedup"), ("eval", "outputs_identical"), ("train", "speedup"),
                         ("overhead", "cold_s"), ("overhead", "warm_s"), ("plan", "trials_per_s"),
                         ("store", "rows_per_s"), ("eval", "reference_examples_per_s"), ("eval", "ours_examples_per_s"),
                         ("train", "reference_tokens_per_s"), ("train", "ours_tokens_per_s"), ("train", "reference_loss"),
                         ("train", "ours_loss"), ("machine", "torch"), ("settings", "model")]:
        assert key in figures[section], f"{section}.{key}"
    assert figures["eval"]["n"] == settings.TINY.eval_prompts
    peer = figures["eval"]["peer"]  # transformers' batched generate on the same prompts and batches
    assert peer["batch_size"] == figures["eval"]["batch_size"] and peer["seconds"] > 0
    assert 0 <= peer["peer_differs_from_reference"] <= settings.TINY.eval_prompts
    assert peer["speedup_vs_peer"] == pytest.approx(peer["seconds"] / figures["eval"]["ours_s"])
    assert set(figures["targets"]["met"]) == set(suite.TARGETS)
    assert figures["train"]["reference"]["steps"] == figures["train"]["ours"]["steps"] == settings.TINY.train_steps
    train = figures["train"]  # ours: the loop's default, packed on llama; the reference padded
    assert train["ours"]["packed"] is True and train["reference"]["packed"] is False and train["ours_loop"] == "packed"
    assert train["epoch_pad_tokens"]["ours"] == train["epoch_pad_tokens"]["packed"] <= train["epoch_pad_tokens"]["reference"]
    # The protocol's accumulation (16 a step in micro-batches of 4): the reference runs each micro-batch,
    # ours fills forwards of up to 4 x 128 tokens; then both again with micro-batches of 16, one forward a step.
    assert train["reference"]["forwards_per_step"] == 4 and train["ours"]["forwards_per_step"] < 4
    whole = train["micro_batch_equals_batch"]
    assert whole["micro_batch_size"] == whole["batch_size"] == 16 and whole["ours"]["packed"]
    assert whole["reference"]["forwards_per_step"] == whole["ours"]["forwards_per_step"] == 1
    assert figures["plan"]["trials"] == settings.TINY.plan_trials
    assert figures["store"]["rows_read"] == settings.TINY.store_trials
    paths = report.write(figures, tmp_path / "perf", tmp_path / "out.json")
    stored = json.loads((tmp_path / "out.json").read_text())
    assert stored["eval"]["outputs_identical"] is True and "speedup" in stored["train"]
    text = (tmp_path / "perf" / "perf.md").read_text()
    assert "| evaluation" in text and "With micro-batches of 16 (one forward a step" in text
    assert "| evaluation vs the peer path (transformers' batched generate" in text
    assert len(paths) == 3


def test_perf_part_eval_measures_decoding_only_and_reports_it(tmp_path):
    chosen = settings.pick(False, None, ["eval"])
    assert chosen.parts == ("eval",) and settings.pick(False, None, ["control", "eval"]).parts == ("eval", "control")
    figures = suite.run(replace(settings.TINY, parts=("eval",)), log=lambda *_: None)
    assert {"eval", "train", "overhead", "plan", "store"} & set(figures) == {"eval"}
    assert set(figures["targets"]["met"]) == {"eval.speedup", "eval.speedup_vs_peer"}
    text = report.markdown(figures)
    assert "| evaluation vs the peer path" in text and "| training" not in text and "| plan" not in text
    with pytest.raises(ValueError, match="perf.parts"):
        settings.Settings(parts=("decode",))


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "tiny-roberta"], "perf --model tiny-roberta: family roberta is an encoder; allowed: a causal"),
    (["--model", "no-such-model"], "no-such-model"),
    (["--part", "eval", "--device", "cuda"], "perf --part: not with --device"),
])
def test_perf_refuses_a_model_that_cannot_decode_before_loading_anything(argv, message, capsys):
    from benchmark.cli import main

    assert main(["perf", "--quick", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_device_perf_runs_every_part_on_a_tiny_shape_and_reports_it(tmp_path):
    """perf --device's code (the GPU figures) on CPU with a tiny shape: every part, every key, no error."""
    from benchmark.perf import accelerator

    saved = []
    figures = accelerator.run(accelerator.TINY, log=lambda *_: None, save=saved.append)
    assert len(saved) == 3  # after each part, so a run cut short keeps what it measured
    train = figures["train"]
    assert not train["failed"] and {(r["batch_size"], r["micro_batch_size"], r["mode"]) for r in train["runs"]} == {
        (8, 4, "reference"), (8, 4, "grouped"), (8, 4, "packed")}
    assert [r["packed"] for r in train["runs"]] == [False, False, True]
    assert [r["forwards_per_step"] for r in train["runs"]][0] == 2  # the reference: one per micro-batch
    assert train["gradient_checkpointing"]["gradient_checkpointing"] is True
    assert set(train["speedup_vs_reference"]) == {"8/4.grouped", "8/4.packed"}
    assert figures["eval"]["speedup"] > 0 and figures["identity_fp32"]["outputs_identical"] is True
    paths = report.write_device(figures, tmp_path, tmp_path / "gpu.json")
    assert [p.name for p in paths] == ["perf-cpu.json", "perf-cpu.md", "gpu.json"]
    text = (tmp_path / "perf-cpu.md").read_text()
    assert "| 8/4 | packed |" in text and "outputs identical **True**" in text


def test_device_perf_without_cuda_is_a_clear_error():
    from benchmark.errors import UserError
    from benchmark.perf import accelerator

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="no CUDA device"):
        accelerator.run(accelerator.DeviceSettings(), log=lambda *_: None)
    args = build_parser().parse_args(["perf", "--device", "cuda", "--quick"])
    assert args.device == "cuda" and accelerator.pick(args.device, args.quick).batches == ((16, 4), (16, 16))


def test_perf_command_line():
    args = build_parser().parse_args(["perf", "--quick", "--json", "x.json", "--model", "tiny-bloom", "--part", "eval"])
    assert (args.quick, args.json, args.model, args.out, args.part) == (True, "x.json", "tiny-bloom", "reports/perf",
                                                                        ["eval"])
    chosen = settings.pick(args.quick, args.model)
    assert chosen.model == "tiny-bloom" and chosen.max_new_tokens == 256 and chosen.num_beams == 4
    assert chosen.eval_prompts == settings.QUICK.eval_prompts
    real = settings.pick(True, "llama-7b")  # real weights: fewer prompts, the reference shorter, fewer steps; 4 beams
    assert (real.model, real.eval_prompts, real.max_new_tokens, real.reference_max_new_tokens, real.num_beams) == (
        "llama-7b", 8, 256, 64, 4)
    assert settings.pick(False, "llama-7b").eval_prompts == settings.FULL.eval_prompts


def test_settings_validate_with_the_field_name():
    with pytest.raises(ValueError, match="perf.train_steps"):
        settings.Settings(train_steps=0)
    with pytest.raises(ValueError, match="perf.batch_size"):
        settings.Settings(batch_size=10, micro_batch_size=4)
    from benchmark.perf import accelerator

    with pytest.raises(ValueError, match="perf.batches"):
        accelerator.DeviceSettings(batches=((16, 5),))


def test_synthetic_grid_has_exactly_the_requested_trials(tmp_path):
    figures, specs = control.measure_plan(settings.Settings(plan_trials=30), tmp_path)
    assert figures["trials"] == 30 == len({s.trial_id for s in specs})


def _llama(layers=4, hidden=256, heads=8, vocab=1000):
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                                        num_hidden_layers=layers, num_attention_heads=heads))


def test_configure_backends_is_a_no_op_on_cpu():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())
    assert gpu.configure_backends("cpu") == {}
    assert (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()) == before
    free = gpu.free_memory_bytes("cpu")  # the host's available RAM (Linux), what a CPU decoding may use
    assert free is None or free > 0


def test_decoding_batch_size_is_capped_per_device_and_falls_back_without_a_memory_reading(monkeypatch):
    model = _llama(layers=1, hidden=32, heads=2, vocab=50)
    monkeypatch.setattr(gpu, "free_memory_bytes", lambda device: 10**12)
    assert gpu.decoding_batch_size(model, 100, 256, 4, fallback=16) == gpu.MAX_CPU_EVAL_BATCH
    monkeypatch.setattr(gpu, "free_memory_bytes", lambda device: None)
    assert gpu.decoding_batch_size(model, 100, 256, 4, fallback=16) == 16


def test_eval_batch_size_from_free_memory():
    model = _llama()
    per = gpu.bytes_per_example(model, prompt_len=200, max_new_tokens=256, num_beams=4)
    # KV cache: 2 (k, v) x 4 layers x 256 dims x 4 bytes x 456 positions x 4 beams, counted twice for the reorder copy
    assert per > 2 * 2 * 4 * 256 * 4 * 456 * 4
    small = gpu.eval_batch_size(model, free_bytes=per * 10, prompt_len=200, max_new_tokens=256, num_beams=4)
    big = gpu.eval_batch_size(model, free_bytes=per * 100, prompt_len=200, max_new_tokens=256, num_beams=4)
    assert 1 <= small < big
    assert small == int(per * 10 * gpu.DEFAULT_MEMORY_FRACTION) // per
    assert gpu.eval_batch_size(model, 0, 200, 256, 4) == 1  # never zero
    assert gpu.eval_batch_size(model, 10**15, 200, 256, 4, max_batch=64) == 64
    assert gpu.eval_batch_size(model, per * 100, 200, 32, 4) > big  # shorter decoding, more examples
    with pytest.raises(ValueError, match="num_beams"):
        gpu.eval_batch_size(model, per, 200, 256, 0)
    with pytest.raises(ValueError, match="memory_fraction"):
        gpu.eval_batch_size(model, per, 200, 256, 4, memory_fraction=1.5)


def test_device_perf_records_a_loop_that_goes_non_finite_and_measures_the_rest(tmp_path):
    """A loop whose loss turns NaN (here: every padded forward in training) is recorded as failed with its
    error; the packed loop is still measured and the report shows both."""
    from benchmark.perf import accelerator

    base, tok = accelerator.build(accelerator.TINY)

    def poison_padded(module, _args, kwargs, output):
        if module.training and kwargs.get("attention_mask") is not None:
            output.loss = output.loss * float("nan")
        return output

    base.register_forward_hook(poison_padded, with_kwargs=True)
    figures = accelerator.train_figures(accelerator.TINY, base, tok, log=lambda *_: None)
    assert [(r["mode"], r["gradient_checkpointing"]) for r in figures["failed"]] == [("reference", False),
                                                                                     ("grouped", False)]
    assert all("non-finite loss at step 1" in r["error"] for r in figures["failed"])
    assert [r["mode"] for r in figures["runs"]] == ["packed"] and figures["gradient_checkpointing"]["packed"]
    assert figures["speedup_vs_reference"] == {}
    text = report.device_markdown({"settings": {"device": "cpu", "dtype": "float32", "train_steps": 2},
                                   "machine": {"torch": "t", "transformers": "t"}, "train": figures})
    assert "| 8/4 | reference | - | failed: non-finite loss at step 1" in text and "| 8/4 | packed |" in text


def test_reference_at_a_shorter_length_times_ours_at_both():
    """Real weights: the reference at reference_max_new_tokens, ours at that and the peer's (protocol) length."""
    from benchmark.perf import evaluation

    s = replace(settings.TINY, parts=("eval",), max_new_tokens=6, reference_max_new_tokens=3)
    e = evaluation.measure(s)
    assert e["max_new_tokens"] == 3 and e["max_new_tokens_seen"] <= 3 and e["outputs_identical"] is True
    peer = e["peer"]
    assert peer["max_new_tokens"] == 6 and "peer_differs_from_reference" not in peer
    assert 0 <= peer["peer_differs_from_ours"] <= s.eval_prompts
    assert peer["speedup_vs_peer"] == pytest.approx(peer["seconds"] / peer["ours_s"])
    lines, notes = report._eval_part({"eval": e}, {})
    assert "max_new_tokens 6" in lines[1] and "differ from ours" in notes[0]
    with pytest.raises(ValueError, match="perf.reference_max_new_tokens: got 7"):
        replace(settings.TINY, max_new_tokens=6, reference_max_new_tokens=7)


def test_memory_sampler_sees_what_a_phase_allocates_and_a_trial_records_both_phases():
    import time

    from benchmark.runner import run_trial
    from tests.test_faults import _spec

    with gpu.MemorySampler("cpu") as idle:
        time.sleep(0.1)
    with gpu.MemorySampler("cpu", interval=0.01) as busy:
        held = torch.ones(64 * 2**20)  # 256 MiB, touched
        time.sleep(0.2)
        del held
    assert busy.peak - idle.peak >= 200 * 2**20  # this phase's own resident set, not the process's high-water mark
    assert idle.p99 <= idle.peak and busy.p99 <= busy.peak and len(busy.samples) >= 5
    result = run_trial(_spec(), "/nonexistent")
    assert result.status == "ok", result.error
    for phase in ("train", "eval"):
        peak, p99 = getattr(result, f"{phase}_peak_memory_bytes"), getattr(result, f"{phase}_p99_memory_bytes")
        assert 0 < p99 <= peak
    assert result.peak_memory_bytes == max(result.train_peak_memory_bytes, result.eval_peak_memory_bytes)
    assert result.train_tokens > 0
