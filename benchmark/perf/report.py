"""The perf figures as JSON and as a Markdown page (reports/perf/perf.json, perf.md)."""

from __future__ import annotations

import json
from pathlib import Path


def _f(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def markdown(fig: dict) -> str:
    """The figures of the parts measured: one table row each, then the details below it."""
    met = fig.get("targets", {}).get("met", {})
    m = fig["machine"]
    lines = [
        "# peft-bench perf",
        "",
        f"Model `{fig['settings']['model']}`, {m['cpus']} CPUs, torch {m['torch']}, transformers {m['transformers']}, "
        f"{m['torch_threads']} torch threads, CUDA {m['cuda']}. Ratios are measured side by side in one run.",
        "",
        "| measurement | reference | peft-bench | ratio | target |",
        "|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for part in (_eval_part, _train_part, _cotrain_part, _overhead_part, _control_part):
        rows, details = part(fig, met)
        lines += rows
        notes += details
    return "\n".join([*lines, "", *notes, f"Total run time {_f(fig['seconds'], 1)} s.", ""])


def _verdict(met: dict, key: str) -> str:
    return {True: "met", False: "MISSED"}.get(met.get(key), "-")


def _eval_part(fig: dict, met: dict) -> tuple[list[str], list[str]]:
    e = fig.get("eval")
    if not e:
        return [], []
    peer = e["peer"]
    rows = [
        f"| evaluation, examples/s ({e['n']} prompts, {e['num_beams']} beams, max_new_tokens {e['max_new_tokens']}; "
        f"reference batch 1, ours batch {e['batch_size']}) | "
        f"{_f(e['reference_examples_per_s'])} ({_f(e['reference_s'])} s) | {_f(e['ours_examples_per_s'])} "
        f"({_f(e['ours_s'])} s) | {_f(e['speedup'], 1)}x | >= 20x, {_verdict(met, 'eval.speedup')} |",
        f"| evaluation vs the peer path (transformers' batched generate: KV cache, left padding, attention mask; "
        f"batch {peer['batch_size']}, max_new_tokens {peer.get('max_new_tokens', e['max_new_tokens'])}) | "
        f"{_f(peer['examples_per_s'])} ({_f(peer['seconds'])} s) | "
        f"{_f(peer.get('ours_examples_per_s', e['ours_examples_per_s']))} ({_f(peer.get('ours_s', e['ours_s']))} s) | "
        f"{_f(peer['speedup_vs_peer'], 1)}x | "
        f">= 2x, {_verdict(met, 'eval.speedup_vs_peer')} |",
    ]
    notes = [
        f"Evaluation outputs identical token for token (fp32): **{e['outputs_identical']}** "
        f"({e['mismatches']} of {e['n']} differ); mean prompt {_f(e['mean_prompt_tokens'], 1)} tokens, "
        f"mean continuation {_f(e['mean_new_tokens'], 1)} tokens, longest {e['max_new_tokens_seen']}. "
        + (f"The peer path is {_f(peer['speedup_vs_reference'], 1)}x the reference; "
           f"{peer['peer_differs_from_reference']} of its {e['n']} outputs differ from the reference's."
           if "peer_differs_from_reference" in peer else
           f"At the peer's max_new_tokens {peer['max_new_tokens']} (the reference timed at {e['max_new_tokens']}): "
           f"mean continuation {_f(peer['mean_new_tokens'], 1)} tokens; {peer['peer_differs_from_ours']} of the "
           f"peer's {e['n']} outputs differ from ours."),
        "",
    ]
    return rows, notes


def _train_part(fig: dict, met: dict) -> tuple[list[str], list[str]]:
    t = fig.get("train")
    if not t:
        return [], []
    rows = [
        f"| training, non-pad tokens/s ({t['steps']} steps of {t['batch_size']} examples in micro-batches of "
        f"{t['micro_batch_size']}, LoRA; reference: each micro-batch padded, "
        f"{_f(t['reference']['forwards_per_step'], 1)} forwards a step; ours {t['ours_loop']}, "
        f"{_f(t['ours']['forwards_per_step'], 1)} forwards a step) | "
        f"{_f(t['reference_tokens_per_s'], 0)} | {_f(t['ours_tokens_per_s'], 0)} | {_f(t['speedup'])}x | "
        f">= 1.3x, {_verdict(met, 'train.speedup')} |",
    ]
    notes = [
        f"Training loss after {t['steps']} steps: reference {_f(t['reference_loss'], 4)}, peft-bench "
        f"{_f(t['ours_loss'], 4)}; every run's tokens/s: reference "
        f"{', '.join(_f(v, 0) for v in t.get('all_runs_tokens_per_s', {}).get('reference', []))}, peft-bench "
        f"{', '.join(_f(v, 0) for v in t.get('all_runs_tokens_per_s', {}).get('ours', []))}; "
        f"pad tokens per epoch: reference {t['epoch_pad_tokens']['reference']:,}, "
        f"peft-bench {t['epoch_pad_tokens']['ours']:,} (mean example {_f(t['mean_tokens_per_example'], 1)} tokens).",
        "",
        *_one_forward_a_step(t),
    ]
    return rows, notes


def _cotrain_part(fig: dict, met: dict) -> tuple[list[str], list[str]]:
    c = fig.get("cotrain")
    if not c:
        return [], []
    rows = [
        f"| co-training, wall seconds ({c['trials']} trials: {', '.join(c['methods'])}; {c['steps']} steps of "
        f"{c['batch_size']} in micro-batches of {c['micro_batch_size']}; reference: solo, one after another) | "
        f"{_f(c['solo_s'])} | {_f(c['cotrain_s'])} | {_f(c['speedup'])}x | "
        f">= 3x, {_verdict(met, 'cotrain.speedup')} |",
    ]
    notes = [
        f"Co-training: non-pad tokens/s solo {_f(c['solo_tokens_per_s'], 0)}, co-trained "
        f"{_f(c['cotrain_tokens_per_s'], 0)}; the largest relative difference of a member's loss at any step, "
        f"co-trained vs solo: {c['max_loss_rel_diff']:.2g} (<= 1e-4: {_verdict(met, 'cotrain.max_loss_rel_diff')}).",
        "",
    ]
    return rows, notes


def _overhead_part(fig: dict, met: dict) -> tuple[list[str], list[str]]:
    o = fig.get("overhead")
    if not o:
        return [], []
    rows = [f"| trial start to first optimizer step | cold {_f(o['cold_s'])} s | warm {_f(o['warm_s'])} s | "
            f"{_f(o['speedup'])}x | - |"]
    notes = [f"Overhead, cold: data {_f(o['cold']['data_s'], 3)} s, base model {_f(o['cold']['model_s'], 3)} s; "
             f"warm: data {_f(o['warm']['data_s'], 3)} s, base model {_f(o['warm']['model_s'], 3)} s.", ""]
    return rows, notes


def _control_part(fig: dict, met: dict) -> tuple[list[str], list[str]]:
    p, st = fig.get("plan"), fig.get("store")
    if not p:
        return [], []
    rows = [
        f"| plan {p['trials']:,} trials | | {_f(p['seconds'])} s ({_f(p['trials_per_s'], 0)} trials/s) | | "
        f"< 5 s, {_verdict(met, 'plan.seconds')} |",
        f"| store: write + read {st['trials']:,} trials (one file per trial, {st['writers']} writer processes) | | "
        f"{_f(st['seconds'])} s (write {_f(st['write_s'])} s, read {_f(st['read_s'])} s; "
        f"{_f(st['rows_per_s'], 0)} trials/s) | | "
        f"< 10 s, {_verdict(met, 'store.seconds')} |",
    ]
    notes = [
        f"Store: one writer alone takes {_f(st['write_ms_per_trial_one_writer'], 2)} ms per trial file (Arrow "
        f"table, Parquet footer, rename); the runner's Ray workers write theirs side by side, and each "
        f"worker rolls its last 256 trial files up into one, so a read opens ~1 file per 256 trials. "
        f"The bulk path (`Store.write_many` + read) takes {_f(st['bulk_write_read_s'])} s for the same results.",
        "",
    ]
    return rows, notes


def _one_forward_a_step(t: dict) -> list[str]:
    """The comparison again with micro-batches as large as the batch: packing's gain alone."""
    u = t.get("micro_batch_equals_batch")
    if not u:
        return []
    return [f"With micro-batches of {u['micro_batch_size']} (one forward a step in both loops, so what packing "
            f"alone gains): reference {_f(u['reference_tokens_per_s'], 0)}, peft-bench {_f(u['ours_tokens_per_s'], 0)} "
            f"tokens/s, {_f(u['speedup'])}x; loss {_f(u['reference_loss'], 4)} vs {_f(u['ours_loss'], 4)}.", ""]


def write(fig: dict, out_dir: Path, json_file: Path | None = None, name: str = "perf", render=None) -> list[Path]:
    """<name>.json and <name>.md in out_dir (and the JSON again at json_file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(fig, indent=1, sort_keys=True, default=str)
    paths = [out_dir / f"{name}.json", out_dir / f"{name}.md"]
    paths[0].write_text(text)
    paths[1].write_text((render or markdown)(fig))
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(text)
        paths.append(json_file)
    return paths


def device_markdown(fig: dict) -> str:
    """The GPU figures (perf/accelerator.py) as Markdown; parts that failed show their error."""
    m, model = fig["machine"], fig.get("model", {})
    lines = ["# peft-bench perf on an accelerator", "",
             f"{m.get('gpu', fig['settings']['device'])}, torch {m['torch']}, transformers {m['transformers']}. "
             f"Model: `{model.get('shape')}` shape with random weights ({_f(model.get('parameters'), 0)} parameters), "
             f"{fig['settings']['dtype']}.", ""]
    t = fig.get("train", {})
    if "error" in t:
        lines += [f"Training: failed ({t['error']}).", ""]
    elif t:
        lines += [f"## Training (LoRA r 8, {fig['settings']['train_steps']} steps, {fig['settings'].get('train_dataset', 'embedded training set')}, mean "
                  f"{_f(t['mean_tokens_per_example'], 1)} tokens per example)", "",
                  "| batch / micro | loop | forwards a step | non-pad tokens/s | vs reference | loss | peak GiB | TFLOP/s "
                  "| MFU |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in t["runs"] + ([t["gradient_checkpointing"]] if t.get("gradient_checkpointing") else []):
            sizes = f"{r['batch_size']}/{r['micro_batch_size']}"
            ratio = None if r["gradient_checkpointing"] else t["speedup_vs_reference"].get(f"{sizes}.{r['mode']}")
            loop = r["mode"] + (" + gradient checkpointing" if r["gradient_checkpointing"] else "")
            loop += "" if r["packed"] or r["mode"] != "packed" else " (fell back to padding)"
            lines.append(f"| {sizes} | {loop} | {_f(r['forwards_per_step'], 1)} | {_f(r['tokens_per_s'], 0)} | "
                         f"{_f(ratio) + 'x' if ratio else '-'} | {_f(r['final_loss'], 4)} | {_f(r['peak_memory_gib'])} | "
                         f"{_f(r['achieved_tflops'], 1)} | {_f(r['mfu'] * 100 if r['mfu'] else None, 1)}% |")
        for r in t.get("failed", []):
            rerun = f"; on the math SDPA kernel: {r['math_sdpa_rerun']}" if "math_sdpa_rerun" in r else ""
            loop = r["mode"] + (" + gradient checkpointing" if r["gradient_checkpointing"] else "")
            lines.append(f"| {r['batch_size']}/{r['micro_batch_size']} | {loop} | - | failed: {r['error']}{rerun} | - | - "
                         "| - | - | - |")
        lines += ["", f"MFU: 4N FLOPs per token for a frozen base (N = {_f(t['matmul_params'], 0)} matmul parameters) "
                  f"plus causal attention, against {_f(t['peak_bf16_tflops'], 0)} TFLOP/s dense bf16.", ""]
    e = fig.get("eval", {})
    if "error" in e:
        lines += [f"Evaluation: failed ({e['error']}).", ""]
    elif e:
        mismatch_key = next(k for k in e if k.endswith("_mismatches_on_reference_prompts"))
        lines += ["## Evaluation", "",
                  f"{e['num_beams']} beams, max_new_tokens {e['max_new_tokens']}, {e['dtype']}: reference (batch 1, "
                  f"no cache) {_f(e['reference_examples_per_s'], 3)} examples/s on {e['n_reference']} prompts; ours "
                  f"(batch {e['batch_size']}) {_f(e['ours_examples_per_s'])} examples/s on {e['n_ours']} prompts "
                  f"(peak {_f(e['ours_peak_memory_gib'])} GiB): **{_f(e['speedup'], 1)}x**. Mean continuation "
                  f"{_f(e['mean_new_tokens'], 1)} tokens; {e[mismatch_key]} of {e['n_reference']} reference prompts "
                  "decoded differently in this dtype.", ""]
    i = fig.get("identity_fp32", {})
    if "error" in i:
        lines += [f"fp32 identity: failed ({i['error']}).", ""]
    elif i:
        lines += [f"fp32 (TF32 off), {i['n']} prompts, {i['max_new_tokens']} new tokens: outputs identical "
                  f"**{i['outputs_identical']}** ({i['mismatches']} differ).", ""]
    lines += [f"Total {_f(fig.get('seconds'), 1)} s.", ""]
    return "\n".join(lines)


def write_device(fig: dict, out_dir: Path, json_file: Path | None = None) -> list[Path]:
    """perf-<device>.json / .md: the GPU figures."""
    return write(fig, out_dir, json_file, name="perf-" + fig["settings"]["device"].split(":")[0],
                 render=device_markdown)
