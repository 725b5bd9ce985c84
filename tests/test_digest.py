"""When the daily digest is due: DIGEST_AT is a local time, DST included."""

from datetime import UTC, date, datetime, time

import pytest

from bot.errors import ConfigError
from bot.watch.digest import digest_day, digest_time


@pytest.mark.parametrize(
    ("tz", "now", "due"),
    [
        ("Europe/Berlin", datetime(2026, 3, 28, 7, 59, tzinfo=UTC), None),
        ("Europe/Berlin", datetime(2026, 3, 28, 8, 0, tzinfo=UTC), date(2026, 3, 28)),
        ("Europe/Berlin", datetime(2026, 3, 29, 6, 59, tzinfo=UTC), None),
        ("Europe/Berlin", datetime(2026, 3, 29, 7, 0, tzinfo=UTC), date(2026, 3, 29)),
        ("America/New_York", datetime(2026, 10, 31, 12, 59, tzinfo=UTC), None),
        ("America/New_York", datetime(2026, 11, 1, 13, 59, tzinfo=UTC), None),
        (
            "America/New_York",
            datetime(2026, 11, 1, 14, 0, tzinfo=UTC),
            date(2026, 11, 1),
        ),
        ("Asia/Tokyo", datetime(2026, 12, 4, 0, 0, tzinfo=UTC), date(2026, 12, 4)),
    ],
    ids=[
        "berlin-winter-before",
        "berlin-winter-09:00-is-08:00-utc",
        "berlin-first-summer-day-before",
        "berlin-first-summer-day-09:00-is-07:00-utc",
        "new-york-summer-before",
        "new-york-first-winter-day-before",
        "new-york-first-winter-day-09:00-is-14:00-utc",
        "tokyo-is-already-tomorrow",
    ],
)
def test_the_digest_is_due_at_the_local_time(
    tz: str, now: datetime, due: date | None
) -> None:
    """09:00 local, whatever the UTC offset is on that day."""
    assert digest_day(now, time(9, 0), tz) == due


@pytest.mark.parametrize("text", ["9am", "24:00", "9:00", "09:60", ""])
def test_a_digest_time_must_be_hh_mm(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        digest_time(text)

    assert str(raised.value) == (
        f"DIGEST_AT must be a local time like 09:00; got {text!r}"
    )
