"""Coverage as pure functions: shares, verdicts, the gap's bounds and its cost."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.analysis.coverage import PeriodCoverage, Verdict, compare, gap_bounds, judge
from bot.catalog import Catalog
from bot.config import CoverageThresholds
from bot.render.blocks import coverage_summary
from bot.sources.records import Counts, PeriodCounts
from bot.windows import resolve_window

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"
NOVA = "amazon.nova-micro-v1:0"
THIEF = "anthropic.claude-3-7-sonnet-20250219-v1:0"
CATALOG = Catalog()
LIMITS = CoverageThresholds()


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("provider", "gateway", "model", "verdict"),
    [
        (Counts(100, 1000), Counts(34, 300), "opus", Verdict.LIKELY_UNAUTHORIZED),
        (Counts(100, 1000), Counts(80, 100), "opus", Verdict.OK),
        (Counts(100, 1000), Counts(80, 60), "opus", Verdict.BELOW_BASELINE),
        (Counts(100, 1000), Counts(85, 1000), "nova", Verdict.BELOW_BASELINE),
        (Counts(100, 1000), Counts(95, 950), "nova", Verdict.OK),
        (
            Counts(100, 1000),
            Counts(120, 1200),
            "nova",
            Verdict.GATEWAY_EXCEEDS_PROVIDER,
        ),
        (Counts(10, 100), Counts(12, 120), "nova", Verdict.OK),
        (Counts(0, 0), Counts(9, 90), "nova", Verdict.GATEWAY_EXCEEDS_PROVIDER),
        (Counts(), Counts(), "nova", Verdict.NO_TRAFFIC),
        (Counts(100, 1000), None, "nova", Verdict.NO_DATA),
        (Counts(100, 1000), Counts(0, 0), None, Verdict.LIKELY_UNAUTHORIZED),
    ],
    ids=[
        "opus-35pct",
        "opus-above-baseline",
        "opus-tokens-below-baseline",
        "nova-calls-below-baseline",
        "nova-within-tolerance",
        "gateway-20pct-more",
        "excess-too-small-to-judge",
        "gateway-only",
        "no-traffic",
        "gateway-unknown",
        "unknown-model",
    ],
)
def test_verdicts(
    provider: Counts, gateway: Counts | None, model: str | None, verdict: Verdict
) -> None:
    spec = CATALOG.resolve(model) if model else None
    assert judge(provider, gateway, spec, LIMITS) is verdict


def test_compare_totals_cost_and_unknown_models() -> None:
    """Uncovered tokens priced at the catalog; billed unknown IDs get gateway 0."""
    window = resolve_window("6h", now=at(6))
    billed = [
        PeriodCounts(OPUS, at(0), Counts(100, 2_000_000, 100_000)),
        PeriodCounts(OPUS, at(1), Counts(300, 6_000_000, 300_000)),
        PeriodCounts(THIEF, at(1), Counts(7, 7_000, 700)),
    ]
    logged = [
        PeriodCounts(OPUS, at(0), Counts(100, 2_000_000, 100_000)),
        PeriodCounts(OPUS, at(1), Counts(40, 400_000, 20_000)),
    ]

    report = compare(window, "bedrock", CATALOG, [OPUS, NOVA], billed, logged, LIMITS)

    opus, nova, thief = report.models
    assert opus.provider == Counts(400, 8_000_000, 400_000)
    assert opus.gateway == Counts(140, 2_400_000, 120_000)
    assert opus.invocation_coverage == pytest.approx(0.35)
    assert opus.input_token_coverage == pytest.approx(0.30)
    assert opus.uncovered == Counts(260, 5_600_000, 280_000)
    # 5.6M input at $5/M + 0.28M output at $25/M
    assert opus.uncovered_cost_usd == pytest.approx(35.0)
    assert opus.verdict is Verdict.LIKELY_UNAUTHORIZED
    assert opus.gap_began == at(1) and opus.gap_ended is None
    assert [(p.provider, p.gateway) for p in opus.series] == [(100, 100), (300, 40)]
    assert nova.verdict is Verdict.NO_TRAFFIC
    assert (thief.name, thief.gateway, thief.verdict) == (
        None,
        Counts(),
        Verdict.LIKELY_UNAUTHORIZED,
    )
    assert thief.uncovered_cost_usd is None
    assert [m.model_id for m in report.worst()] == [OPUS, THIEF, NOVA]


def test_without_gateway_data_nothing_is_claimed() -> None:
    window = resolve_window("1h", now=at(1))
    billed = [PeriodCounts(OPUS, at(0), Counts(10, 10, 10))]

    (opus,) = compare(window, "bedrock", CATALOG, [OPUS], billed, None, LIMITS).models

    assert opus.verdict is Verdict.NO_DATA
    assert opus.invocation_coverage is None
    assert opus.uncovered_cost_usd is None


def test_gap_bounds_follow_the_latest_run() -> None:
    """Empty periods neither start nor end a gap; the latest run is reported."""
    series = [
        PeriodCoverage(at(0), 100, 20),
        PeriodCoverage(at(1), 100, 95),
        PeriodCoverage(at(2), 0, 0),
        PeriodCoverage(at(3), 100, 30),
        PeriodCoverage(at(4), 0, 0),
        PeriodCoverage(at(5), 100, 10),
        PeriodCoverage(at(6), 100, 99),
    ]

    assert gap_bounds(series, 0.5) == (at(3), at(6))
    assert gap_bounds(series[:6], 0.5) == (at(3), None)
    assert gap_bounds(series[1:3], 0.5) == (None, None)


def late_gap(hours_short: int) -> list[PeriodCounts]:
    """Opus fully logged for six hours, then the last `hours_short` at 30%."""
    billed = [PeriodCounts(OPUS, at(h), Counts(100, 1000, 100)) for h in range(6)]
    calls = [30 if h >= 6 - hours_short else 100 for h in range(6)]
    logged = [
        PeriodCounts(OPUS, at(h), Counts(n, n * 10, n)) for h, n in enumerate(calls)
    ]
    return billed + logged


@pytest.mark.parametrize(
    ("hours_short", "expected"),
    [
        (2, PeriodCoverage(at(4), 200, 60)),
        (1, None),
        (0, None),
    ],
    ids=["two-periods", "only-the-last", "none"],
)
def test_an_open_gap_of_two_periods_is_reported(
    hours_short: int, expected: PeriodCoverage | None
) -> None:
    """A gap still open at the window's end, summed since it began."""
    points = late_gap(hours_short)
    billed, logged = points[:6], points[6:]
    window = resolve_window("6h", now=at(6))

    (opus,) = compare(window, "bedrock", CATALOG, [OPUS], billed, logged, LIMITS).models

    assert opus.ongoing_gap() == expected


def test_summary_names_a_late_gap_under_a_fine_total() -> None:
    """77% over the window reads fine; the summary still names the last two hours."""
    points = late_gap(2)
    window = resolve_window("6h", now=at(6))
    report = compare(window, "bedrock", CATALOG, [OPUS], points[:6], points[6:], LIMITS)

    assert report.models[0].verdict is Verdict.OK
    assert coverage_summary(report, "Europe/Berlin") == (
        ":rotating_light: *claude-large*: 76.7% over the 6h (ok), but only 30.0% "
        "since Thu 03 Dec 15:00 CET: 140 calls billed and not logged, still going on."
    )
