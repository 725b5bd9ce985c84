"""Plain data that every source produces and every analysis consumes."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Counts:
    """Calls and tokens for one model over some span of time."""

    invocations: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    throttles: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(
            self.invocations + other.invocations,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.throttles + other.throttles,
        )


@dataclass(frozen=True)
class PeriodCounts:
    """Counts for one provider model ID in the period that starts at `start` (UTC)."""

    model_id: str
    start: datetime
    counts: Counts


def totals_by_model(points: list[PeriodCounts]) -> dict[str, Counts]:
    """Sum a per-period series into one `Counts` per provider model ID."""
    totals: dict[str, Counts] = {}
    for point in points:
        totals[point.model_id] = totals.get(point.model_id, Counts()) + point.counts
    return totals


@dataclass(frozen=True)
class SourceFailure:
    """A source that could not answer, named in the reply."""

    source: str
    message: str
