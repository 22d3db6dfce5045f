"""The record every generation task is read into; it lives with its format (registry/formats/llm_adapters.py)."""

from benchmark.registry.formats.llm_adapters import Example

__all__ = ["Example"]
