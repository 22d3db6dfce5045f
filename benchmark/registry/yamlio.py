"""Safe YAML loading and the small checks every schema uses, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import yaml

from benchmark.errors import UserError, did_you_mean

_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def load_yaml(file: Path) -> dict:
    """yaml.safe_load (never the full loader: a suite file must not construct Python objects)."""
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{file}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{file}: {where}invalid YAML: {problem}") from None
    if data is None:
        raise UserError(f"{file}: top level: empty file; allowed: a mapping of keys")
    if not isinstance(data, dict):
        raise UserError(f"{file}: top level: got {type(data).__name__}; allowed: a mapping of keys")
    return data


def field_path(parent: str, key) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def check_keys(body, allowed: set[str], file: Path, where: str) -> None:
    if not isinstance(body, dict):
        raise UserError(f"{file}: {where or 'top level'}: got {body!r}; allowed: a mapping with keys {', '.join(sorted(allowed))}")
    for key in body:
        if key not in allowed:
            raise UserError(f"{file}: {field_path(where, key)}: unknown key{did_you_mean(key, allowed)}; "
                            f"allowed: {', '.join(sorted(allowed))}")


def require(body: dict, key: str, kind, file: Path, where: str):
    """body[key], which must exist and be of `kind` (bool is not accepted as int)."""
    path = field_path(where, key)
    if key not in body:
        raise UserError(f"{file}: {path}: missing; allowed: {_TYPE_NAMES.get(kind, kind.__name__)}")
    value = body[key]
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise UserError(f"{file}: {path}: got {value!r}; allowed: {_TYPE_NAMES.get(kind, kind.__name__)}")
    return value
