"""Evaluation: batched generation, answer extraction per protocol, metrics."""

from benchmark.evaluation.extract import extract_answer, is_correct
from benchmark.evaluation.generate import generate, generate_reference
from benchmark.evaluation.run_eval import evaluate

__all__ = ["generate", "generate_reference", "extract_answer", "is_correct", "evaluate"]
