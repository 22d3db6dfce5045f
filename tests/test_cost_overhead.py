"""Inference overhead and forgetting per trial (issue 19, items 3 and 4): real `benchmark.runner` runs of 2-step
trials on tiny-llama fill the decode speeds (merged ones only for a method that merges) and the forgetting losses;
merged decoding gives the unmerged tokens and leaves the weights bit for bit; the base loss is the untouched base's;
an encoder trial asking for forgetting is refused at plan time; the store and the report carry the new columns and
files of the previous schema still read."""

import re

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from benchmark import methods, models
from benchmark.data import load_examples
from benchmark.errors import UserError
from benchmark.evaluation import forgetting
from benchmark.evaluation.generate import generate_ids
from benchmark.evaluation.overhead import MAX_NEW_TOKENS, merged
from benchmark.planner import plan
from benchmark.registry import catalogue
from benchmark.registry.spec import EvalConfig, TrainConfig, TrialSpec
from benchmark.report import build
from benchmark.report.drilldown import trial_page
from benchmark.report.trials import collect_trials
from benchmark.result import Metric, TrialResult
from benchmark.store import TRIAL_SCHEMA, Store

CORPUS = "emb-general-text"
SUITE = """
name: {name}
version: "1"
description: "issue 19 tests: 2-step trials with the cost probes"
defaults:
  model: {model}
  train_data: {train}
  eval_data: [{eval}]
  train: {{batch_size: 4, micro_batch_size: 4, max_steps: 2, max_train_examples: 8, warmup_steps: 0, cutoff_len: 64,
          learning_rate: 1.0e-2}}
  eval: {{num_beams: 1, max_new_tokens: 4, max_eval_examples: 8, batch_size: 8, forgetting: {corpus}}}
grid:
  method: {methods}
"""


def write_suite(folder, name, methods_, model="tiny-llama", train="emb-math_10k", eval_="emb-gsm8k"):
    path = folder / f"{name}.yaml"
    path.write_text(SUITE.format(name=name, model=model, train=train, eval=eval_, corpus=CORPUS,
                                 methods="[" + ", ".join(methods_) + "]"))
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """{method: (trial, result)} of lora (merges), series (cannot) and prefix (a decode hook), run by the runner."""
    from benchmark import runner

    folder = tmp_path_factory.mktemp("overhead")
    trials = plan(str(write_suite(folder, "overhead", ["lora", "series", "prefix"])))[1]
    return {t.spec.method: (t, runner.run_resolved(t, folder / "data")) for t in trials}


def test_the_runner_fills_decode_speeds_and_merged_only_where_the_method_merges(ran):
    for method, (_, result) in ran.items():
        assert result.status == "ok", result.error
        assert result.base_decode_tokens_per_s > 0 and result.decode_tokens_per_s > 0, method
        assert (result.merged_decode_tokens_per_s is not None) == methods.get(method).merges, method
    assert ran["lora"][1].merged_decode_tokens_per_s > 0
    assert {m for m in ("lora", "series", "prefix") if methods.get(m).merges} == {"lora"}


def test_measuring_changes_none_of_the_trials_numbers(ran, monkeypatch, tmp_path):
    from benchmark import runner

    monkeypatch.setattr(runner, "_probe", lambda *args: None)  # the trial as it ran before these measurements
    for method in ("lora", "series"):
        trial, measured = ran[method]
        plain = runner.run_resolved(trial, tmp_path / "data")
        assert plain.status == "ok" and plain.decode_tokens_per_s is None and plain.forgetting_loss is None
        assert plain.train_loss == measured.train_loss, method
        assert [(m.metric, m.value) for m in plain.metrics] == [(m.metric, m.value) for m in measured.metrics]
        assert {k: [p.output for p in v] for k, v in plain.predictions.items()} == \
            {k: [p.output for p in v] for k, v in measured.predictions.items()}


def test_forgetting_base_loss_is_the_untouched_bases_and_training_moves_the_adapted_one(ran):
    trial, result = ran["lora"]
    model, tokenizer = models.load(catalogue.model("tiny-llama"), dtype="float32")
    model.eval()
    docs = load_examples(catalogue.dataset(CORPUS), None)[:forgetting.TEXTS]
    total, count = 0.0, 0
    with torch.no_grad():
        for doc in docs:  # one text at a time, no padding: an independent computation of the same mean
            ids = tokenizer(doc, truncation=True, max_length=trial.spec.train.cutoff_len)["input_ids"]
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
            total += float(loss) * (len(ids) - 1)
            count += len(ids) - 1
    for method, (_, r) in ran.items():
        assert r.forgetting_base_loss == pytest.approx(total / count, rel=1e-5), method
        assert abs(r.forgetting_loss - r.forgetting_base_loss) > 1e-4, method  # two steps at lr 1e-2 moved it


def test_the_store_carries_the_new_columns(ran, tmp_path):
    store = Store(tmp_path)
    for _, result in ran.values():
        store.write(result)
    rows = store.read(["overhead"]).drop_duplicates("trial_id").set_index("method")
    for method, (_, result) in ran.items():
        for column in ("base_decode_tokens_per_s", "decode_tokens_per_s", "forgetting_base_loss", "forgetting_loss"):
            assert rows.loc[method, column] == pytest.approx(getattr(result, column)), (method, column)
    assert rows.loc["lora", "merged_decode_tokens_per_s"] > 0 and pd.isna(rows.loc["series", "merged_decode_tokens_per_s"])


def _perturbed(method: str, seed: int):
    """tiny-llama with `method` injected and its adapter moved off its identity init, so merging changes weights."""
    torch.manual_seed(seed)
    model, tokenizer = models.load(catalogue.model("tiny-llama"), dtype="float32")
    model = methods.apply(model, method, {})
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn_like(p))
    return model.eval(), tokenizer


@pytest.mark.parametrize("method", [m for m in methods.names() if methods.get(m).merges])
def test_merged_decoding_gives_the_unmerged_tokens_and_restores_the_weights_exactly(method):
    model, tokenizer = _perturbed(method, seed=3)
    examples = load_examples(catalogue.dataset("emb-gsm8k"), None)[:6]
    from benchmark.data.prompts import eval_prompt

    prompts = [eval_prompt(ex) for ex in examples]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    unmerged = generate_ids(model, tokenizer, prompts, MAX_NEW_TOKENS, num_beams=1, batch_size=len(prompts))
    with merged(model):
        changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
        assert changed, "merging changed no weight"
        assert generate_ids(model, tokenizer, prompts, MAX_NEW_TOKENS, num_beams=1, batch_size=len(prompts)) == unmerged
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # bit for bit


def test_merged_refuses_a_model_that_cannot_merge():
    model, _ = models.load(catalogue.model("tiny-llama"), dtype="float32")
    with pytest.raises(TypeError, match="no merge_adapter/unmerge_adapter"), merged(model):
        pass


def test_forgetting_on_an_encoder_trial_is_refused_at_plan_time(tmp_path):
    suite = write_suite(tmp_path, "forgetting-encoder", ["lora"], model="tiny-bert", train="emb-sst2-train",
                        eval_="emb-sst2")
    with pytest.raises(UserError, match=r"eval.forgetting: model tiny-bert is an encoder \(bert\).*allowed: causal LMs"):
        plan(str(suite))
    not_corpus = write_suite(tmp_path, "forgetting-task", ["lora"])
    not_corpus.write_text(not_corpus.read_text().replace(f"forgetting: {CORPUS}", "forgetting: emb-gsm8k"))
    with pytest.raises(UserError, match="eval.forgetting: 'emb-gsm8k' is a math dataset; allowed: a dataset of"):
        plan(str(not_corpus))


def test_the_forgetting_corpus_is_needed_data_and_twinned_from_the_real_one():
    from benchmark.planner import datasets_needed

    real, twin = catalogue.dataset("wikitext-2"), catalogue.dataset(CORPUS)
    assert real.embedded_twin == twin.name and real.task_family == twin.task_family == "corpus"
    assert real.format == twin.format == "text" and real.source_note and twin.embedded
    trials = plan("smoke", embedded=True)[1]
    assert {t.forgetting.name for t in trials} == {CORPUS}
    assert CORPUS in [e.name for e in datasets_needed(trials)]
    assert {t.forgetting.name for t in plan("smoke")[1]} == {CORPUS}  # smoke is embedded already


def test_the_general_corpus_is_held_out_of_every_task_text():
    from benchmark.data.embedded import generate_all

    files = generate_all()
    docs = files["corpora/general.txt"]
    assert len(docs) == len(set(docs)) >= forgetting.TEXTS
    texts = {v for rel, content in files.items() if rel != "corpora/general.txt" and isinstance(content, list)
             for row in content for v in (row.values() if isinstance(row, dict) else [row]) if isinstance(v, str)}
    assert not texts & set(docs)


# ---- the store's previous schema and the report ----

def _result(method: str, seed: int, **costs) -> TrialResult:
    spec = TrialSpec(suite="llm_adapters/math", suite_version="1", model="llama-7b", model_source="yahma/llama-7b-hf",
                     model_family="llama", method=method, method_args={}, train_data="math_10k", eval_data=("gsm8k",),
                     train=TrainConfig(seed=seed), eval=EvalConfig(forgetting="wikitext-2"))
    return TrialResult(spec=spec, metrics=[Metric("gsm8k", "math", "accuracy", 30.0 + seed, 100)],
                       trainable_params=4_194_304, total_params=6_742_609_920, device="cpu",
                       started_at="2024-01-01T00:00:00+00:00", finished_at="2024-01-01T00:01:00+00:00", **costs)


NEW_COLUMNS = ("base_decode_tokens_per_s", "decode_tokens_per_s", "merged_decode_tokens_per_s", "forgetting_base_loss",
               "forgetting_loss")


def test_a_file_of_schema_5_still_reads_with_nulls_in_the_new_columns(tmp_path):
    store = Store(tmp_path)
    path = store.write(_result("lora", 1, decode_tokens_per_s=10.0))
    table = pq.read_table(path)
    old = table.drop_columns(list(NEW_COLUMNS)).replace_schema_metadata({"peft_bench.schema_version": "5"})
    pq.write_table(old, path)
    frame = store.read()
    assert list(frame.columns) == TRIAL_SCHEMA.names and len(frame) == 1
    assert all(pd.isna(frame.iloc[0][c]) for c in NEW_COLUMNS) and frame.iloc[0]["value"] == 31.0


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("cost-overhead")
    store = Store(root / "results")
    store.write(_result("lora", 1, base_decode_tokens_per_s=100.0, decode_tokens_per_s=80.0,
                        merged_decode_tokens_per_s=100.0, forgetting_base_loss=2.0, forgetting_loss=2.1))
    store.write(_result("lora", 2, base_decode_tokens_per_s=120.0, decode_tokens_per_s=80.0,
                        merged_decode_tokens_per_s=100.0, forgetting_base_loss=2.0, forgetting_loss=2.3))
    store.write(_result("series", 1, base_decode_tokens_per_s=100.0, decode_tokens_per_s=50.0))
    build(["llm_adapters/math"], root / "results", root / "report")
    out = root / "report"
    page = next(out.glob("*_math.html")).read_text()
    csv = pd.read_csv(next(out.glob("*_math-cost.csv")), dtype=str, keep_default_na=False).set_index("Model / method")
    return store, page, csv


def _cost_cells(page: str) -> tuple[list[str], dict[str, list[str]]]:
    table = page.split("<h2>Cost</h2>", 1)[1].split("</table>", 1)[0]
    headings = re.findall(r"<th>(.*?)</th>", table.split("</thead>", 1)[0])
    rows = re.findall(r"<tr><td>(.*?)</td>(.*?)</tr>", table, flags=re.S)
    return headings, {label: re.findall(r"<td[^>]*>(.*?)</td>", cells) for label, cells in rows}


def test_the_cost_table_shows_overhead_and_forgetting_as_per_trial_means(report):
    _, page, _ = report
    headings, rows = _cost_cells(page)
    cells = {label: dict(zip(headings[1:], values)) for label, values in rows.items()}
    lora, series = cells["llama-7b / lora"], cells["llama-7b / series"]
    # per trial 1.25x and 1.50x; merged 1.00x and 1.20x; loss change +0.1 and +0.3
    assert (lora["Inference overhead"], lora["Inference overhead, merged"]) == ("1.38x", "1.10x")
    assert lora["Forgetting (loss change)"] == "+0.200"
    assert (series["Inference overhead"], series["Inference overhead, merged"], series["Forgetting (loss change)"]) \
        == ("2.00x", "-", "-")


def test_the_cost_csv_carries_the_raw_values_and_the_derived_ones(report):
    _, _, csv = report
    lora = csv.loc["llama-7b / lora"]
    assert float(lora["Base decode tokens/s"]) == 110.0 and float(lora["Adapted decode tokens/s"]) == 80.0
    assert float(lora["Merged decode tokens/s"]) == 100.0
    assert float(lora["Forgetting base loss"]) == 2.0 and float(lora["Forgetting adapted loss"]) == pytest.approx(2.2)
    assert float(lora["Inference overhead (base / adapted tokens/s)"]) == pytest.approx(1.375)
    assert float(lora["Forgetting (adapted - base loss)"]) == pytest.approx(0.2)
    assert csv.loc["llama-7b / series", "Merged decode tokens/s"] == ""  # not measured: empty, never 0


def test_the_trial_page_shows_the_speeds_and_the_losses(report):
    store, _, _ = report
    frame = store.read(["llm_adapters/math"])
    by_method = {}
    for trial in collect_trials(frame):
        rows = frame[frame["trial_id"] == trial.trial_id]
        by_method.setdefault(trial.method, dict(trial_page(trial, rows, store)["facts"]))
    lora, series = by_method["lora"], by_method["series"]
    assert lora["Decode tokens/s (base / adapted / merged)"] in ("100.0 / 80.0 / 100.0 (overhead 1.25x / 1.00x)",
                                                                 "120.0 / 80.0 / 100.0 (overhead 1.50x / 1.20x)")
    assert lora["Forgetting: loss on wikitext-2 (base / adapted)"].startswith("2.0000 / 2.")
    assert "(change +0." in lora["Forgetting: loss on wikitext-2 (base / adapted)"]
    assert series["Decode tokens/s (base / adapted / merged)"] == "100.0 / 50.0 / - (overhead 2.00x)"
    assert series["Forgetting: loss on wikitext-2 (base / adapted)"] == "not measured"
