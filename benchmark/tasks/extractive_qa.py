"""Extractive QA (SQuAD v1.1) on an encoder: document-stride windows, span heads, official EM/F1.

A context longer than the window is cut into overlapping windows (cutoff_len tokens in all,
`train.doc_stride` tokens of overlap, the question repeated in each), as the SQuAD scripts of BERT
and transformers do. Training: a window whose context part holds the whole first answer points
at it; one that does not points at the first token (the "no answer here" position). Evaluation:
in every window the n-best start and end positions inside the context, end >= start and at most
`eval.max_answer_length` tokens apart; the span with the highest start + end logit over all
windows of the question is the answer, cut from the context by character offsets. The dataset entry's
metrics (exact match, token F1) are scored by benchmark.metrics.
"""

from __future__ import annotations

import torch

from benchmark import metrics
from benchmark.errors import UserError
from benchmark.result import Metric, Prediction
from benchmark.tasks import Head

N_BEST = 20  # candidate starts and ends per window (the SQuAD scripts' n_best_size)
SELECTED = "f1"  # the metric dev-split selection reads: token F1


def windows(tokenizer, example, max_length: int, stride: int) -> list[dict]:
    """The tokenised windows of one example: input ids etc., and per token its character span in the
    context (None for question and special tokens)."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("extractive QA needs a fast tokenizer (character offsets); allowed: a tokenizer.json tokenizer")
    try:
        encoded = tokenizer(example.question, example.context, truncation="only_second", max_length=max_length,
                            stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    except Exception as exc:  # the tokenizer refuses a stride that leaves no room for context
        raise UserError(f"example {example.id}: cannot cut windows of {max_length} tokens with doc_stride {stride} "
                        f"({type(exc).__name__}: {exc}); allowed: train.doc_stride well below train.cutoff_len "
                        "minus the question length") from None
    out = []
    for w in range(len(encoded["input_ids"])):
        sequence_ids = encoded.sequence_ids(w)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(encoded["offset_mapping"][w], sequence_ids)]
        feature = {k: list(encoded[k][w]) for k in tokenizer.model_input_names if k in encoded}
        out.append({"feature": feature, "offsets": offsets})
    return out


def answer_positions(offsets: list, start_char: int, end_char: int) -> tuple[int, int]:
    """Token start/end of the character span [start_char, end_char) in a window, or (0, 0) when the window
    does not hold all of it."""
    inside = [i for i, o in enumerate(offsets) if o is not None]
    if not inside or offsets[inside[0]][0] > start_char or offsets[inside[-1]][1] < end_char:
        return 0, 0
    start = next(i for i in inside if offsets[i][1] > start_char)
    end = next(i for i in reversed(inside) if offsets[i][0] < end_char)
    return start, end


def best_span(start_logits, end_logits, offsets: list, max_answer_length: int) -> tuple[float, tuple[int, int] | None]:
    """(score, character span) of the best valid span of one window; (-inf, None) when it has none."""
    starts = torch.topk(start_logits, min(N_BEST, len(start_logits))).indices.tolist()
    ends = torch.topk(end_logits, min(N_BEST, len(end_logits))).indices.tolist()
    best: tuple[float, tuple[int, int] | None] = (float("-inf"), None)
    for s in starts:
        for e in ends:
            if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                continue
            score = float(start_logits[s] + end_logits[e])
            if score > best[0]:
                best = (score, (offsets[s][0], offsets[e][1]))
    return best


class ExtractiveQATask:
    kind = "extractive_qa"
    metric_inputs = ("answers",)  # answer texts against each question's gold answers
    selects_on_dev = True
    head_kind = "question-answering"  # the model head it trains (the planner checks the model family can carry it)

    def head(self, entry, train_examples) -> Head:
        return Head(kind=self.head_kind)

    def features(self, tokenizer, examples, spec, head) -> list[dict]:
        out = []
        for ex in examples:
            if not ex.answers:
                raise UserError(f"example {ex.id}: no answer; allowed: SQuAD v1.1 questions with an answer")
            start_char = ex.answer_starts[0]
            end_char = start_char + len(ex.answers[0])
            for window in windows(tokenizer, ex, spec.train.cutoff_len, spec.train.doc_stride):
                start, end = answer_positions(window["offsets"], start_char, end_char)
                out.append({**window["feature"], "start_positions": start, "end_positions": end})
        return out

    @torch.inference_mode()
    def predict(self, model, tokenizer, examples, spec) -> list[str]:
        from benchmark.train.collate import collate

        model.eval()
        device = next(model.parameters()).device
        cut = [(i, w) for i, ex in enumerate(examples)
               for w in windows(tokenizer, ex, spec.train.cutoff_len, spec.train.doc_stride)]
        best: list[tuple[float, tuple[int, int] | None]] = [(float("-inf"), None)] * len(examples)
        size = spec.eval.batch_size
        for start in range(0, len(cut), size):
            chunk = cut[start:start + size]
            batch = collate([w["feature"] for _, w in chunk], tokenizer.pad_token_id or 0, "right")
            out = model(**{k: v.to(device) for k, v in batch.items()})
            for row, (i, w) in enumerate(chunk):
                n = len(w["offsets"])  # right padding: the window's own tokens come first
                candidate = best_span(out.start_logits[row, :n].float().cpu(), out.end_logits[row, :n].float().cpu(),
                                      w["offsets"], spec.eval.max_answer_length)
                if candidate[0] > best[i][0]:
                    best[i] = candidate
        return [ex.context[span[0]:span[1]].strip() if span else "" for ex, (_, span) in zip(examples, best)]

    def evaluate(self, model, tokenizer, entry, examples, spec, head):
        if not examples:
            raise UserError(f"dataset {entry.name}: no examples to evaluate")
        answers = self.predict(model, tokenizer, examples, spec)
        golds = [ex.answers for ex in examples]
        rows = [Prediction(id=ex.id, prompt=f"{ex.question} [SEP] {ex.context}", output=a, extracted=a,
                           gold=metrics.join_answers(ex.answers), correct=metrics.exact_match(a, ex.answers))
                for ex, a in zip(examples, answers)]
        scored = [Metric(eval_data=entry.name, task_family=entry.task_family, metric=m.stored_name,
                         value=m.fn(answers, golds), n_examples=len(examples))
                  for m in (metrics.get(name, self.metric_inputs) for name in entry.metrics)]
        decoding = {"head": head.kind, "max_length": spec.train.cutoff_len, "doc_stride": spec.train.doc_stride,
                    "max_answer_length": spec.eval.max_answer_length, "n_best": N_BEST, "batch_size": spec.eval.batch_size}
        return scored, rows, decoding

    def selection_metric(self, entry) -> metrics.MetricDef:
        # The protocol (BERT's run_squad, as PT+UniPELT) selects on token F1 whatever order the entry prints.
        return metrics.get(SELECTED if SELECTED in entry.metrics else entry.metric, self.metric_inputs)
