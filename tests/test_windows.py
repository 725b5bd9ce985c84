"""Time windows: accepted forms, one-line refusals, periods and alignment."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import InputError
from bot.windows import choose_period, resolve_window

NOW = datetime(2026, 12, 3, 21, 37, 12, 345, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "period", "start"),
    [
        ("30m", 60, datetime(2026, 12, 3, 21, 7, tzinfo=UTC)),
        ("1h", 300, datetime(2026, 12, 3, 20, 35, tzinfo=UTC)),
        ("48h", 3600, datetime(2026, 12, 1, 21, 0, tzinfo=UTC)),
        ("7d", 21600, datetime(2026, 11, 26, 18, 0, tzinfo=UTC)),
        ("2W", 86400, datetime(2026, 11, 19, 0, 0, tzinfo=UTC)),
    ],
    ids=["30m", "1h", "48h", "7d", "2w-uppercase"],
)
def test_window_period_and_aligned_start(
    text: str, period: int, start: datetime
) -> None:
    """The start is floored to a multiple of the period chosen for the span."""
    window = resolve_window(text, now=NOW)

    assert window.period == period
    assert window.start == start
    assert window.end == NOW.replace(microsecond=0)
    assert window.start.timestamp() % period == 0


def test_default_window_is_48h() -> None:
    assert resolve_window(None, now=NOW).label == "48h"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0h", "window must be a number and a unit: 30m, 1h, 48h, 7d, 2w; got '0h'"),
        ("99x", "window must be a number and a unit: 30m, 1h, 48h, 7d, 2w; got '99x'"),
        ("-1h", "window must be a number and a unit: 30m, 1h, 48h, 7d, 2w; got '-1h'"),
        (
            "1.5h",
            "window must be a number and a unit: 30m, 1h, 48h, 7d, 2w; got '1.5h'",
        ),
        (
            "456d",
            "window must be a number and a unit: 30m, 1h, 48h, 7d, 2w, at most 455d"
            " (CloudWatch's retention); got '456d'",
        ),
        (
            "66w",
            "window must be a number and a unit: 30m, 1h, 48h, 7d, 2w, at most 455d"
            " (CloudWatch's retention); got '66w'",
        ),
    ],
    ids=["zero", "unknown-unit", "negative", "fraction", "456d", "66w"],
)
def test_bad_window_gets_one_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        resolve_window(text, now=NOW)

    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_the_whole_retention_is_accepted() -> None:
    """455 days is as far back as CloudWatch keeps hourly data: one bar a day."""
    window = resolve_window("455d", now=NOW)

    assert window.period == 86400
    assert window.start == datetime(2025, 9, 4, 0, 0, tzinfo=UTC)


def test_old_data_needs_coarser_periods() -> None:
    """CloudWatch drops 1-minute data after 15 days and 5-minute data after 63."""
    assert choose_period(timedelta(minutes=30), timedelta(days=15)) == 60
    assert choose_period(timedelta(minutes=30), timedelta(days=16)) == 300
    assert choose_period(timedelta(hours=1), timedelta(days=20)) == 300
    assert choose_period(timedelta(hours=1), timedelta(days=63)) == 300
    assert choose_period(timedelta(hours=1), timedelta(days=70)) == 3600
