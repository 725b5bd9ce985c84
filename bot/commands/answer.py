"""What a command hands a front end: a message, its charts, and whether it is whole."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Chart:
    filename: str
    title: str
    png: bytes


@dataclass
class Answer:
    """A finished answer for Slack: fallback text, blocks and charts to upload."""

    text: str
    blocks: list[dict[str, Any]]
    charts: list[Chart] = field(default_factory=list)
    partial: bool = False


# Preparing validates what was typed (and may raise InputError) without calling
# any backend; awaiting the returned function does the work.
Prepared = Callable[[], Awaitable[Answer]]
