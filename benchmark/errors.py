"""User-facing errors: one line, no traceback.

Anything a user can fix (a bad suite, a missing dataset, an unknown method argument) raises
UserError; the CLI prints its message alone and exits 2. Bugs stay ordinary exceptions.
"""


class UserError(ValueError):
    """A problem with the user's input, reported as one line naming file, field and allowed values."""


def did_you_mean(word: str, choices) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def first_line(text: str | None) -> str:
    """The first non-empty line of an error text (tracebacks stay in the store, progress shows this)."""
    stripped = (text or "").strip()
    return stripped.splitlines()[0] if stripped else "unknown error"
