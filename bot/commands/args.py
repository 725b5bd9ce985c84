"""Reading the words people type after a command: a model, a window, a flag."""

from dataclasses import dataclass
from datetime import datetime

from bot.catalog import Catalog, ModelSpec
from bot.errors import InputError, echo
from bot.windows import Window, looks_like_window, resolve_window

MAX_ARGUMENT_LENGTH = 200


@dataclass(frozen=True)
class ModelWindow:
    """A model (None for all) and a window, as most commands take them."""

    spec: ModelSpec | None
    window: Window
    flags: frozenset[str]


def split_words(text: str) -> list[str]:
    if len(text) > MAX_ARGUMENT_LENGTH:
        raise InputError(
            f"arguments must be at most {MAX_ARGUMENT_LENGTH} characters;"
            f" got {len(text)}"
        )
    return text.split()


def parse_model_window(
    text: str,
    catalog: Catalog,
    *,
    default_window: str,
    flags: frozenset[str] = frozenset(),
    now: datetime | None = None,
) -> ModelWindow:
    """`[MODEL|all] [WINDOW] [flag...]` in either order; nothing else is accepted."""
    model: str | None = None
    spec: ModelSpec | None = None
    window: str | None = None
    seen: set[str] = set()

    for word in split_words(text):
        lowered = word.lower()
        if lowered in flags:
            seen.add(lowered)
        elif looks_like_window(word) and window is None:
            window = word
        elif model is None and not looks_like_window(word):
            model = word
            spec = None if word.lower() == "all" else catalog.resolve(word)
        else:
            raise InputError(f"unexpected argument {echo(word)}")

    return ModelWindow(
        spec=spec,
        window=resolve_window(window or default_window, now=now),
        flags=frozenset(seen),
    )
