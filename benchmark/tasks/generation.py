"""LLM-Adapters instruction tasks on a causal LM: the prompt template for training, decoding for scoring."""

from __future__ import annotations

from benchmark import metrics
from benchmark.tasks import Head


class GenerationTask:
    kind = "generation"
    selects_on_dev = False  # the LLM-Adapters protocol trains a fixed budget; a held-out split only reports its loss
    head_kind = "causal-lm"  # the model head it trains (the planner checks the model family can carry it)

    def head(self, entry, train_examples) -> Head:
        return Head(kind=self.head_kind)

    def features(self, tokenizer, examples, spec, head) -> list[dict]:
        from benchmark.data.prompts import tokenize_for_training

        eos_when_truncated = not spec.eval.quirk_on("no_eos_when_truncated")
        return [tokenize_for_training(tokenizer, ex, spec.train.cutoff_len, spec.trains_on_inputs, eos_when_truncated)
                for ex in examples]

    def evaluate(self, model, tokenizer, entry, examples, spec, head):
        """([accuracy], predictions, decoding settings)."""
        from benchmark import methods
        from benchmark.evaluation import evaluate

        cfg = self._eval_config(model, tokenizer, entry, examples, spec)
        # a method that changes the inputs a model decodes from (prefix, prompt tuning) says how to build them
        metric, predictions, decoding = evaluate(model, tokenizer, entry, examples, cfg,
                                                 decode_hook=methods.get(spec.method).decode_hook, seed=spec.train.seed)
        return [metric], predictions, decoding

    @staticmethod
    def _eval_config(model, tokenizer, entry, examples, spec):
        """The decoding batch is sized from the free memory of the model's device (GPU memory, or the
        host's RAM on CPU; capped per device kind); the suite's eval.batch_size stands only where free
        memory cannot be read. Outputs do not depend on the batch (tested), only speed does."""
        import dataclasses

        from benchmark.data.prompts import eval_prompt
        from benchmark.device import decoding_batch_size
        from benchmark.evaluation.run_eval import decoding_settings

        if not examples:
            return spec.eval
        longest = max(len(ids) for ids in tokenizer([eval_prompt(ex) for ex in examples])["input_ids"])
        size = decoding_batch_size(model, prompt_len=longest, num_beams=spec.eval.num_beams,
                                   max_new_tokens=decoding_settings(entry, spec.eval)["max_new_tokens"],
                                   fallback=spec.eval.batch_size)
        return dataclasses.replace(spec.eval, batch_size=size)

    def selection_metric(self, entry) -> metrics.MetricDef:
        return metrics.get("accuracy")  # what evaluate reports, whatever the entry declares
