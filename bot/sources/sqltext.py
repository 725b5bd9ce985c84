"""ClickHouse SQL literals built from values, the only way values enter our SQL."""

from collections.abc import Iterable

# Control characters are written as \xHH so a literal always stays on one line and
# no byte of the value can end it early.
_ESCAPES = {"\\": "\\\\", "'": "\\'"} | {
    chr(code): f"\\x{code:02x}" for code in [*range(0x20), 0x7F]
}


def quote_string(value: str) -> str:
    """A single-quoted ClickHouse string literal that reads back as exactly `value`."""
    if not isinstance(value, str):
        raise TypeError(f"value must be a str; got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"value must be valid UTF-8 text; got {value[:40]!r}") from exc
    return "'" + "".join(_ESCAPES.get(char, char) for char in value) + "'"


def quote_list(values: Iterable[str]) -> str:
    """A parenthesised list of string literals for `IN (...)`; never empty."""
    literals = [quote_string(value) for value in values]
    if not literals:
        raise ValueError("values must hold at least one string; got none")
    return "(" + ", ".join(literals) + ")"


def integer(value: int) -> str:
    """An integer literal; refuses anything that is not a plain `int`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"value must be an int; got {type(value).__name__}")
    return str(value)
