"""Sentence (pair) classification and regression on an encoder: GLUE and the DAPT domain tasks.

The label space is read from the training file (sorted values, index = class id), so string labels
(DAPT: "INHIBITOR", "METHODS" ...) and GLUE's integers work the same way; an evaluation label
the training file never had is an error, not a silent zero. The dataset entry names the metric;
benchmark.metrics computes it (and says which label is F1's positive one); a metric over scores
(Spearman, Pearson) makes the task a regression.
"""

from __future__ import annotations

import torch

from benchmark import metrics
from benchmark.errors import UserError
from benchmark.result import Metric, Prediction
from benchmark.tasks import Head


def label_space(entry, examples) -> tuple:
    values = {ex.label for ex in examples}
    if None in values:
        raise UserError(f"dataset {entry.name}: some training rows have no label (-1 or null); allowed: labelled rows")
    return tuple(sorted(values, key=lambda v: (type(v).__name__, v)))


METRIC_INPUTS = ("labels", "scores")  # class labels; scores make the task a regression


def score(metric: str, predictions: list, golds: list, labels: tuple) -> float:
    """The dataset's metric from the table (benchmark.metrics), over the training file's label space."""
    definition = metrics.get(metric, METRIC_INPUTS)
    return definition.fn(predictions, golds, None if definition.inputs == "scores" else labels)


def is_regression(entry) -> bool:
    """A metric over scores (Spearman, Pearson) makes the dataset a regression."""
    return metrics.get(entry.metric, METRIC_INPUTS).inputs == "scores"


def _inputs(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if k != "labels"}


class ClassificationTask:
    kind = "classification"
    metric_inputs = METRIC_INPUTS
    selects_on_dev = True
    head_kind = "sequence-classification"  # the model head it trains (the planner checks the model family can carry it)

    def head(self, entry, train_examples) -> Head:
        if is_regression(entry):
            return Head(kind=self.head_kind, regression=True)
        labels = label_space(entry, train_examples)
        if len(labels) < 2:
            raise UserError(f"dataset {entry.name}: the training file has {len(labels)} label value(s); allowed: 2 or more")
        return Head(kind=self.head_kind, labels=labels)

    def features(self, tokenizer, examples, spec, head: Head) -> list[dict]:
        index = {label: i for i, label in enumerate(head.labels)}
        out = []
        for ex in examples:
            encoded = tokenizer(ex.text, ex.text_pair, truncation=True, max_length=spec.train.cutoff_len)
            feature = {k: list(v) for k, v in encoded.items() if k in tokenizer.model_input_names}
            if ex.label is None:
                raise UserError(f"example {ex.id}: no label; allowed: labelled rows (GLUE test files hide theirs)")
            if head.regression:
                feature["labels"] = float(ex.label)
            elif ex.label not in index:
                raise UserError(f"example {ex.id}: label {ex.label!r} does not occur in the training file; "
                                f"allowed: {', '.join(map(str, head.labels))}")
            else:
                feature["labels"] = index[ex.label]
            out.append(feature)
        return out

    @torch.inference_mode()
    def predict(self, model, tokenizer, features: list[dict], batch_size: int) -> list:
        """Predicted label values (or scores) in the order of `features`; batches sorted by length."""
        from benchmark.train.collate import collate

        model.eval()
        device = next(model.parameters()).device
        order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
        outputs: list = [None] * len(features)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = collate([features[i] for i in rows], tokenizer.pad_token_id or 0, tokenizer.padding_side)
            logits = model(**_inputs(batch, device)).logits.float()
            values = logits[:, 0].tolist() if logits.shape[-1] == 1 else logits.argmax(-1).tolist()
            for i, value in zip(rows, values):
                outputs[i] = value
        return outputs

    def evaluate(self, model, tokenizer, entry, examples, spec, head: Head):
        if not examples:
            raise UserError(f"dataset {entry.name}: no examples to evaluate")
        features = self.features(tokenizer, examples, spec, head)
        raw = self.predict(model, tokenizer, features, spec.eval.batch_size)
        predictions = raw if head.regression else [head.labels[i] for i in raw]
        golds = [float(ex.label) if head.regression else ex.label for ex in examples]
        rows = []
        for ex, pred, gold in zip(examples, predictions, golds):
            text = ex.text if ex.text_pair is None else f"{ex.text} [SEP] {ex.text_pair}"
            shown = f"{pred:.3f}" if head.regression else str(pred)
            # regression: "correct" = within half a point of the gold score (for per-example audit only)
            correct = abs(pred - gold) <= 0.5 if head.regression else pred == gold
            rows.append(Prediction(id=ex.id, prompt=text, output=shown, extracted=shown, gold=str(gold), correct=bool(correct)))
        scored = [Metric(eval_data=entry.name, task_family=entry.task_family, metric=name,
                         value=score(name, predictions, golds, head.labels), n_examples=len(examples))
                  for name in entry.metrics]
        decoding = {"head": head.kind, "num_labels": head.num_labels, "max_length": spec.train.cutoff_len,
                    "batch_size": spec.eval.batch_size, "labels": [str(x) for x in head.labels]}
        return scored, rows, decoding

    def selection_metric(self, entry) -> metrics.MetricDef:
        return metrics.get(entry.metric, METRIC_INPUTS)
