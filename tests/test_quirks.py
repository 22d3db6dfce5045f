"""The protocol quirks as named switches (issue 19, item 1): each switch changes exactly what it names.

Extraction quirks on hand-written outputs (flipping one changes only its own answer rule), generation quirks on
hand-made batches (the unmasked batches equal transformers decoding with an all-ones mask; dropout only where
switched), training quirks on tokenised examples, the selection quirk in the planner; the switches' parsing, ids and
labels."""

import dataclasses

import pytest
import torch

from benchmark.data.example import Example
from benchmark.data.prompts import EVAL_NO_INPUT, eval_prompt, tokenize_for_training, train_prompt
from benchmark.errors import UserError
from benchmark.evaluation import evaluate
from benchmark.evaluation.extract import extract_answer
from benchmark.evaluation.generate import generate_ids, generate_ids_hf
from benchmark.evaluation.run_eval import batch_shapes_outputs, decoding_settings
from benchmark.registry import quirks
from benchmark.registry.catalogue import DatasetEntry
from benchmark.registry.spec import EvalConfig, TrainConfig, TrialSpec
from tests.test_evaluation_generate import bpe_tokenizer, tiny_model, word_prompts, word_tokenizer

NUMBER = DatasetEntry(name="q-num", format="llm-adapters", path="x.json", task_family="math", answer="number")
LETTER = DatasetEntry(name="q-letter", format="llm-adapters", path="x.json", task_family="math", answer="letter",
                      labels=("A", "B", "C", "D", "E"))
CHOICE = DatasetEntry(name="q-choice", format="llm-adapters", path="x.json", task_family="commonsense",
                      answer="choice", labels=("solution1", "solution2"))
# (entry, output, answer with the quirk on, answer with it off), one per extraction quirk
CASES = {
    "last_number": (NUMBER, "The answer is 42. Check: 6 * 7", "7", "42."),  # the reference regex keeps the period
    "aqua_first_letter": (LETTER, "Each box holds 5. The answer is C", "E", "C"),
    "first_match_choice": (CHOICE, "solution1 is tempting, but the correct answer is solution2", "solution1",
                           "solution2"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_extraction_quirk_changes_its_own_rule_and_nothing_else(name):
    entry, output, on, off = CASES[name]
    assert extract_answer(entry, output, "llm-adapters") == on  # the protocol has it
    assert extract_answer(entry, output, "llm-adapters", {name: False}) == off
    assert extract_answer(entry, output, "strict") == off  # strict has none
    assert extract_answer(entry, output, "strict", {name: True}) == on
    for other, (other_entry, other_output, other_on, _) in CASES.items():  # the other rules do not move
        if other != name:
            assert extract_answer(other_entry, other_output, "llm-adapters", {name: False}) == other_on


def test_protocols_are_sets_of_quirks():
    for q in quirks.QUIRKS.values():
        assert q.stage in quirks.STAGES and q.description and q.source
        assert not quirks.is_on("strict", {}, q.name)
        assert quirks.is_on("strict", {q.name: True}, q.name)
    on = {q.name for q in quirks.QUIRKS.values() if quirks.is_on("llm-adapters", {}, q.name)}
    assert on == {"aqua_first_letter", "first_match_choice", "last_number", "template_whitespace",
                  "no_eos_when_truncated", "train_on_inputs"}
    assert {q.name for q in quirks.QUIRKS.values() if quirks.is_on("pt-unipelt", {}, q.name)} == {"select_on_reported_set"}


def test_switches_parse_name_the_field_and_round_trip_through_labels():
    assert quirks.parse_switches({"dropout_at_eval": "on", "last_number": False}) == {
        "dropout_at_eval": True, "last_number": False}
    with pytest.raises(ValueError, match=r"eval.quirks.dropout: unknown quirk; allowed: aqua_first_letter"):
        EvalConfig(quirks={"dropout": True})
    with pytest.raises(ValueError, match=r"eval.quirks.last_number: got 'maybe'; allowed: on, off"):
        EvalConfig(quirks={"last_number": "maybe"})
    with pytest.raises(ValueError, match=r"eval.quirks: got \['x'\]; allowed: a mapping"):
        EvalConfig(quirks=["x"])
    switches = {"aqua_first_letter": False, "dropout_at_eval": True}
    text = quirks.label("llm-adapters", switches)
    assert text == "llm-adapters.aqua_first_letter-off.dropout_at_eval-on"
    assert quirks.parse_label(text) == ("llm-adapters", switches)
    assert quirks.label("llm-adapters", {"last_number": True}) == "llm-adapters"  # the default is no switch
    with pytest.raises(ValueError, match="protocol: got 'paper'"):
        quirks.parse_label("paper.last_number-on")


def _spec(**eval_fields) -> TrialSpec:
    return TrialSpec(suite="s", suite_version="1", model="tiny-llama", model_source="embedded:tiny-llama",
                     model_family="llama", method="lora", train_data="emb-math_10k", eval_data=("emb-gsm8k",),
                     eval=EvalConfig(**eval_fields))


def test_switches_are_part_of_the_trial_id_and_no_switch_keeps_the_old_id():
    base = _spec()
    assert "quirks" not in base.identity()["eval"] and "forgetting" not in base.identity()["eval"]
    assert _spec(quirks={}).trial_id == base.trial_id
    assert _spec(quirks={"dropout_at_eval": True}).trial_id != base.trial_id
    assert _spec(quirks={"dropout_at_eval": True}).trial_id != _spec(quirks={"dropout_at_eval": False}).trial_id
    restored = TrialSpec.from_dict(_spec(quirks={"dropout_at_eval": "on"}).to_dict())
    assert restored.eval.quirks == {"dropout_at_eval": True}


# ---- training quirks ----

def _long_example() -> Example:
    return Example(id="t/0", instruction="w1 " * 40, input="", output="w2 w3", answer="")


def test_no_eos_when_truncated_acts_only_on_cut_examples():
    tok = word_tokenizer()
    eos = tok.eos_token_id
    cut_on = tokenize_for_training(tok, _long_example(), 32, True)
    cut_off = tokenize_for_training(tok, _long_example(), 32, True, eos_when_truncated=True)
    assert len(cut_on["input_ids"]) == len(cut_off["input_ids"]) == 32
    assert cut_on["input_ids"][-1] != eos and cut_off["input_ids"][-1] == eos
    assert cut_on["input_ids"][:-1] == cut_off["input_ids"][:-1]
    short = Example(id="t/1", instruction="w1 w2", input="", output="w3", answer="")
    assert tokenize_for_training(tok, short, 256, True) == tokenize_for_training(tok, short, 256, True,
                                                                                 eos_when_truncated=True)
    assert tokenize_for_training(tok, short, 256, True)["input_ids"][-1] == eos


def test_train_on_inputs_quirk_decides_the_mask():
    assert _spec().trains_on_inputs  # llm-adapters: train.train_on_inputs (default true) stands
    assert not _spec(quirks={"train_on_inputs": False}).trains_on_inputs
    assert not _spec(protocol="strict").trains_on_inputs  # strict masks the prompt
    assert _spec(protocol="strict", quirks={"train_on_inputs": True}).trains_on_inputs
    masked = dataclasses.replace(_spec(), train=TrainConfig(train_on_inputs=False))
    assert not masked.trains_on_inputs


def test_the_generation_task_tokenises_by_the_switches():
    from benchmark.tasks.generation import GenerationTask

    tok = word_tokenizer()
    ex = _long_example()

    def feats(**eval_fields):
        spec = dataclasses.replace(_spec(**eval_fields), train=TrainConfig(cutoff_len=32))
        return GenerationTask().features(tok, [ex], spec, None)[0]

    faithful = feats()
    assert faithful["labels"][1:] == faithful["input_ids"][1:]  # loss on the prompt too
    assert faithful["input_ids"][-1] != tok.eos_token_id
    assert feats(quirks={"no_eos_when_truncated": False})["input_ids"][-1] == tok.eos_token_id
    assert set(feats(quirks={"train_on_inputs": False})["labels"]) == {-100}  # all prompt: the cut kept no output


# ---- generation quirks ----

def test_template_whitespace_switches_the_evaluation_prompt_only():
    ex = Example(id="p/0", instruction="Add 2 and 3.", input="", output="", answer="5")
    assert eval_prompt(ex) == EVAL_NO_INPUT.format(instruction=ex.instruction)
    assert eval_prompt(ex, reference_template=False) == train_prompt(ex, with_output=False)
    on, off = EvalConfig(), EvalConfig(quirks={"template_whitespace": False})
    changed = {k for k in decoding_settings(NUMBER, on) if decoding_settings(NUMBER, on)[k] != decoding_settings(NUMBER, off)[k]}
    assert changed == {"prompt_template", "quirks"}


def test_unmasked_batches_equal_transformers_decoding_without_a_mask():
    model, tok = tiny_model("llama"), word_tokenizer()
    prompts = word_prompts()  # different lengths: every batch but the last pads
    with torch.inference_mode():
        fast = generate_ids(model, tok, prompts, max_new_tokens=6, num_beams=2, batch_size=3, sort=False,
                            mask_pads=False)
        hf = generate_ids_hf(model, tok, prompts, max_new_tokens=6, num_beams=2, batch_size=3, sort=False,
                             mask_pads=False)
        masked = generate_ids(model, tok, prompts, max_new_tokens=6, num_beams=2, batch_size=3)
        alone = [generate_ids(model, tok, [p], max_new_tokens=6, num_beams=2, batch_size=1, sort=False,
                              mask_pads=False)[0] for p in prompts]
    assert fast == hf  # the quirk is what transformers does with an all-ones mask
    assert masked == alone  # one at a time, there is no padding to attend to: the faithful batch-1 decoding
    assert fast != masked  # and padded rows attending to their pads decode something else


def test_no_attention_mask_acts_on_choice_sets_only_and_fixes_the_batch():
    cfg = EvalConfig(quirks={"no_attention_mask": True})
    assert not decoding_settings(CHOICE, cfg)["attention_mask"] and decoding_settings(NUMBER, cfg)["attention_mask"]
    assert batch_shapes_outputs(CHOICE, cfg) and not batch_shapes_outputs(NUMBER, cfg)
    assert not batch_shapes_outputs(CHOICE, EvalConfig())
    assert batch_shapes_outputs(NUMBER, EvalConfig(quirks={"dropout_at_eval": True}))


def _lora_model(tok, dropout: float):
    from benchmark import methods

    model = tiny_model("llama", vocab_size=len(tok))
    config = methods.build_config("lora", {"r": 4, "alpha": 8, "dropout": dropout})
    torch.manual_seed(0)
    model = methods.get("lora").inject(model, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model


def test_dropout_at_eval_decodes_in_training_mode_reproducibly():
    examples = [Example(id=f"d/{i}", instruction=f"Pick for {i}" + " more" * i, input="", output="",
                        answer=f"solution{1 + i % 2}") for i in range(4)]
    tok = bpe_tokenizer([eval_prompt(ex) for ex in examples] + ["the correct answer is solution1 solution2"])
    model = _lora_model(tok, dropout=0.5)
    modes = []
    handle = model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    on = EvalConfig(num_beams=2, batch_size=2, max_new_tokens=6, quirks={"dropout_at_eval": True})
    first = [p.output for p in evaluate(model, tok, CHOICE, examples, on, seed=3)[1]]
    assert modes and all(modes) and not model.training  # decoded in training mode, left in eval mode
    modes.clear()
    again = [p.output for p in evaluate(model, tok, CHOICE, examples, on, seed=3)[1]]
    assert again == first  # the trial's seed draws the masks: the same trial decodes the same way
    off = [p.output for p in evaluate(model, tok, CHOICE, examples, dataclasses.replace(on, quirks={}), seed=3)[1]]
    assert modes and not any(modes[len(modes) // 2:])  # the faithful run decodes in eval mode
    handle.remove()
    with torch.inference_mode():
        model.eval()
        plain = [p.output for p in evaluate(model, tok, CHOICE, examples, dataclasses.replace(on, quirks={}))[1]]
    assert off == plain and first != off  # dropout at p=0.5 moves something; off is the deterministic decoding


# ---- the selection quirk ----

def test_select_on_reported_set_selects_on_the_first_eval_set():
    from benchmark.planner import plan

    _, trials = plan("pt_unipelt/glue", ["method=unipelt", "train.seed=42", "train.learning_rate=0.002"],
                     embedded=True)
    trial = trials[0]
    assert trial.dev_data is None  # the suite holds a dev split out of training
    from benchmark.planner import resolve

    switched = dataclasses.replace(trial.spec, eval=dataclasses.replace(trial.spec.eval, protocol="pt-unipelt"))
    resolved = resolve(switched)
    assert resolved.dev_data == resolved.eval_data[0] and resolved.dev_name == resolved.eval_data[0].name
    off = dataclasses.replace(switched, eval=dataclasses.replace(switched.eval, quirks={"select_on_reported_set": False}))
    assert resolve(off).dev_data is None
    with pytest.raises(UserError, match="select_on_reported_set: on, but dev_data is"):
        resolve(dataclasses.replace(switched, dev_data=resolved.eval_data[0].name))
