"""Gateway usage from the stand-in's ClickHouse: exact figures and escaped SQL."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.sources.gateway import fetch_gateway_usage, gateway_usage_sql
from bot.sources.records import Counts, PeriodCounts
from bot.sources.sqltext import integer, quote_list, quote_string
from bot.sources.tinybird import TinybirdClient
from bot.standins.tinybird import GatewayEvent, TinybirdStandIn
from bot.windows import Window

OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"
NOVA = "amazon.nova-micro-v1:0"
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
VERTEX_OPUS = "claude-opus-4-5@20251101"
START = datetime(2025, 3, 1, tzinfo=UTC)
WINDOW = Window(start=START, end=START + timedelta(hours=3), period=3600, label="3h")

HOSTILE = [
    "opus'; DROP TABLE generation_event --",
    "x' OR '1'='1",
    "\\' OR 1=1 --",
    "\u2019 OR \u20181\u2019=\u20181",
    "\uff07; DROP TABLE generation_event; --",
    "a\\\\'); DROP TABLE generation_event; --",
    "line\nbreak'\r\t--",
    "nul\x00byte",
    "*/ OR 1=1 /*",
]
HOSTILE_IDS = [
    "quote-drop",
    "or-true",
    "backslash-quote",
    "curly-quotes",
    "fullwidth-quote",
    "double-backslash",
    "newlines",
    "nul",
    "comment-close",
]


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def event(minutes: float, model: str = OPUS, **changes: object) -> GatewayEvent:
    fields: dict[str, object] = {
        "start_time": at(minutes),
        "model_used": model,
        "token_count_prompt_text": 100,
        "token_count_completion_text": 10,
    }
    return GatewayEvent(**(fields | changes))  # type: ignore[arg-type]


KNOWN_EVENTS = [
    event(0),
    event(59, token_count_prompt_text=200, token_count_completion_text=20),
    event(70, token_count_prompt_text=300, token_count_completion_text=30),
    event(179.9, NOVA, token_count_prompt_text=5, token_count_completion_text=2),
    # None of these may count.
    event(10, cache_hit=True, token_count_prompt_text=1000),
    event(20, environment="staging", token_count_prompt_text=1000),
    event(80, VERTEX_OPUS, model_requested=OPUS, model_provider_used="vertex-ai"),
    event(90, HAIKU),
    event(-0.5),
    event(180),
]
KNOWN_ANSWER = [
    PeriodCounts(
        OPUS, START, Counts(invocations=2, input_tokens=300, output_tokens=30)
    ),
    PeriodCounts(
        OPUS, at(60), Counts(invocations=1, input_tokens=300, output_tokens=30)
    ),
    PeriodCounts(NOVA, at(120), Counts(invocations=1, input_tokens=5, output_tokens=2)),
]


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "bare"])
async def test_counts_only_billable_production_events(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient, quoted: bool
) -> None:
    """Cache hits, staging, fallbacks, other models and outside times are left out."""
    tinybird.insert_events(KNOWN_EVENTS)
    tinybird.quote_64bit = quoted

    points = await fetch_gateway_usage(
        tinybird_client, WINDOW, [OPUS, NOVA], "production"
    )

    assert points == KNOWN_ANSWER
    assert tinybird.requests_served == 1


async def test_buckets_follow_the_window_period(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient
) -> None:
    """With a 15-minute period each event lands in its own quarter hour."""
    tinybird.insert_events([event(0), event(14), event(15), event(44), event(45)])
    window = Window(start=START, end=at(60), period=900, label="1h")

    points = await fetch_gateway_usage(tinybird_client, window, [OPUS], "production")

    assert [(p.start, p.counts.invocations) for p in points] == [
        (START, 2),
        (at(15), 1),
        (at(30), 1),
        (at(45), 1),
    ]


async def test_staging_is_counted_when_asked_for(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient
) -> None:
    """The environment is a parameter, not a constant."""
    tinybird.insert_events(KNOWN_EVENTS)

    points = await fetch_gateway_usage(tinybird_client, WINDOW, [OPUS], "staging")

    assert points == [
        PeriodCounts(
            OPUS, START, Counts(invocations=1, input_tokens=1000, output_tokens=10)
        )
    ]


async def test_no_model_ids_means_no_query(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient
) -> None:
    """An empty list of IDs answers at once without asking Tinybird."""
    points = await fetch_gateway_usage(tinybird_client, WINDOW, [], "production")

    assert (points, tinybird.requests_served) == ([], 0)


async def test_large_counts_stay_exact(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient
) -> None:
    """Token sums past 2**53 survive the trip as exact integers."""
    huge = 2**62
    tinybird.insert_events([event(1, token_count_prompt_text=huge)] * 3)

    [point] = await fetch_gateway_usage(tinybird_client, WINDOW, [OPUS], "production")

    assert point.counts.input_tokens == 3 * huge


@pytest.mark.parametrize("hostile", HOSTILE, ids=HOSTILE_IDS)
async def test_hostile_text_never_changes_the_query(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient, hostile: str
) -> None:
    """Hostile IDs and environments only ever match rows holding that exact text."""
    tinybird.insert_events([*KNOWN_EVENTS, event(5, hostile, environment=hostile)])

    by_model = await fetch_gateway_usage(
        tinybird_client, WINDOW, [hostile], "production"
    )
    by_environment = await fetch_gateway_usage(tinybird_client, WINDOW, [OPUS], hostile)
    both = await fetch_gateway_usage(tinybird_client, WINDOW, [hostile], hostile)

    assert (by_model, by_environment) == ([], [])
    assert both == [
        PeriodCounts(
            hostile, START, Counts(invocations=1, input_tokens=100, output_tokens=10)
        )
    ]
    assert tinybird.execute("SELECT count() FROM generation_event") == "11\n"


@pytest.mark.parametrize("text", HOSTILE, ids=HOSTILE_IDS)
async def test_string_literals_read_back_exactly(
    tinybird_client: TinybirdClient, text: str
) -> None:
    """ClickHouse reads every quoted literal back as the very same text."""
    result = await tinybird_client.query(f"SELECT {quote_string(text)} AS v")

    assert result.data == [{"v": text}]


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("opus'; DROP TABLE x --", "'opus\\'; DROP TABLE x --'"),
        ("back\\slash", "'back\\\\slash'"),
        ("two\nlines\x00", "'two\\x0alines\\x00'"),
        ("\u2019\u2018\uff07", "'\u2019\u2018\uff07'"),
    ],
    ids=["quote", "backslash", "controls", "unicode-quotes"],
)
def test_quote_string_writes_these_literals(text: str, literal: str) -> None:
    """Backslash and quote are escaped, controls become \\xHH, the rest stays."""
    assert quote_string(text) == literal


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: quote_string(3), TypeError, "value must be a str; got int"),
        (
            lambda: quote_string("\ud800"),
            ValueError,
            "value must be valid UTF-8 text; got '\\ud800'",
        ),
        (lambda: quote_list([]), ValueError, "values must hold at least one string"),
        (lambda: integer(True), TypeError, "value must be an int; got bool"),
        (lambda: integer("1"), TypeError, "value must be an int; got str"),
    ],
    ids=["not-str", "surrogate", "empty-list", "bool", "str-int"],
)
def test_literals_refuse_what_they_cannot_write(
    call: object, error: type[Exception], message: str
) -> None:
    """Values that have no safe literal are refused with a named reason."""
    with pytest.raises(error) as caught:
        call()  # type: ignore[operator]

    assert str(caught.value).startswith(message)


def test_quote_list_joins_literals() -> None:
    assert quote_list(["a", "b'c"]) == "('a', 'b\\'c')"


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (
            Window(START, at(60), 0, "1h"),
            "window.period must be positive seconds; got 0",
        ),
        (
            Window(START.replace(tzinfo=None), at(60), 60, "1h"),
            "window bounds must be timezone-aware; got 2025-03-01 00:00:00",
        ),
    ],
    ids=["zero-period", "naive-start"],
)
def test_unusable_windows_are_refused(window: Window, message: str) -> None:
    """A window that cannot be written as SQL fails before any query."""
    with pytest.raises(ValueError) as caught:
        gateway_usage_sql(window, [OPUS], "production")

    assert str(caught.value) == message
