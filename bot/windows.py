"""Time windows typed by people (`30m`, `48h`, `7d`) and the periods that suit them."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.errors import InputError, echo

DEFAULT_WINDOW = "48h"
ACCEPTED_FORMS = "a number and a unit: 30m, 1h, 48h, 7d, 2w"

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"(\d{1,6})([mhdw])")

# CloudWatch keeps 1-minute data for 15 days, 5-minute data for 63 days and hourly
# data for 455 days; a period finer than the data that still exists returns nothing.
RETENTION = timedelta(days=455)
_RESOLUTION_BY_AGE = (
    (timedelta(days=15), 60),
    (timedelta(days=63), 300),
    (RETENTION, 3600),
)
_PERIOD_LADDER = (60, 300, 900, 3600, 6 * 3600, 86400)
# About as many bars as a chart in a Slack preview can show legibly.
_MAX_POINTS = 48


@dataclass(frozen=True)
class Window:
    """A closed-open interval [start, end) in UTC, with the period to bucket it by."""

    start: datetime
    end: datetime
    period: int
    label: str

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def parse_duration(text: str) -> timedelta:
    """Read `30m`, `1h`, `7d`; `InputError` naming the accepted forms otherwise."""
    match = _PATTERN.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise InputError(f"window must be {ACCEPTED_FORMS}; got {echo(text)}")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def looks_like_window(text: str) -> bool:
    """Whether a word is meant as a window rather than a model name."""
    return re.fullmatch(r"\d+\w*", text.strip()) is not None


def choose_period(span: timedelta, oldest_age: timedelta) -> int:
    """The finest period that keeps a chart legible and that CloudWatch still holds."""
    finest = next(p for age, p in _RESOLUTION_BY_AGE if oldest_age <= age)
    for period in _PERIOD_LADDER:
        if period >= finest and span.total_seconds() / period <= _MAX_POINTS:
            return period
    return _PERIOD_LADDER[-1]


def resolve_window(
    text: str | None, now: datetime | None = None, period: int | None = None
) -> Window:
    """Turn a typed window into UTC bounds whose start is a multiple of the period."""
    label = (text or DEFAULT_WINDOW).strip().lower()
    span = parse_duration(label)
    if span > RETENTION:
        raise InputError(
            f"window must be {ACCEPTED_FORMS}, at most {RETENTION.days}d"
            f" (CloudWatch's retention); got {label!r}"
        )

    end = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    chosen = period or choose_period(span, span)
    epoch = int((end - span).timestamp())
    start = datetime.fromtimestamp(epoch - epoch % chosen, UTC)
    return Window(start=start, end=end, period=chosen, label=label)
