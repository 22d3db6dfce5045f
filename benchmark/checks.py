"""Validation helpers shared by every config dataclass and parser: one wording for every "got X; allowed: Y"."""

from __future__ import annotations

import math
from typing import Any


def check(cond: bool, field: str, value: Any, allowed: str) -> None:
    """ValueError whose message starts with the field name: 'train.epochs: got 0; allowed: a number > 0'."""
    if not cond:
        raise ValueError(f"{field}: got {value!r}; allowed: {allowed}")


def is_number(value: Any) -> bool:
    """An int or float but not a bool (YAML's `yes` must not pass as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    """An int but not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def in_range(value: Any, low: float, high: float, integer: bool = False) -> bool:
    """low <= value <= high, for a number (an int when integer) that is not a bool."""
    return (is_int(value) if integer else is_finite(value)) and low <= value <= high
