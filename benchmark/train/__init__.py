"""The training loop (lean PyTorch, LLM-Adapters semantics), its collator and batching."""

from benchmark.train.loop import TrainStats, train

__all__ = ["train", "TrainStats"]
