"""Charts: size, shading, time zones and totals, read back from the figure and PNG."""

import asyncio
import io
import itertools
import struct
from datetime import UTC, datetime, timedelta

import matplotlib.dates as mdates
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.image import imread

from bot.errors import ConfigError
from bot.render.plots import (
    HEIGHT_PX,
    IN_PROGRESS_GID,
    IN_PROGRESS_LABEL,
    NO_TRAFFIC,
    UNCOVERED_GID,
    WIDTH_PX,
    CoverageBox,
    build_coverage_figure,
    build_usage_figure,
    coverage_chart,
    figure_png,
    format_box,
    period_label,
    usage_chart,
)

HOUR = 3600
START = datetime(2026, 5, 4, 8, tzinfo=UTC)
BOX = CoverageBox(
    provider_total=12_345,
    gateway_total=4_370,
    coverage=0.354,
    uncovered=7_975,
    uncovered_cost_usd=1234.56,
    label="Verdict: LIKELY UNAUTHORIZED",
)


def hours(count: int, start: datetime = START) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(count)]


def png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def gap_collection(figure: Figure) -> PolyCollection:
    found = [
        c
        for c in figure.axes[0].collections
        if isinstance(c, PolyCollection) and c.get_gid() == UNCOVERED_GID
    ]
    assert len(found) == 1
    return found[0]


def x_extent(vertices: np.ndarray) -> tuple[datetime, datetime]:
    return (
        mdates.num2date(vertices[:, 0].min(), UTC),
        mdates.num2date(vertices[:, 0].max(), UTC),
    )


@pytest.mark.parametrize(
    "png",
    [
        pytest.param(
            lambda: usage_chart("m", hours(3), [1, 2, 3], HOUR, "UTC"), id="usage"
        ),
        pytest.param(
            lambda: coverage_chart("m", hours(2), [5, 9], [5, 2], HOUR, "UTC", BOX),
            id="coverage",
        ),
        pytest.param(lambda: usage_chart("m", [], [], HOUR, "UTC"), id="empty-usage"),
        pytest.param(
            lambda: coverage_chart("m", hours(2), [0, 0], [0, 0], HOUR, "UTC", BOX),
            id="zero-coverage",
        ),
    ],
)
def test_charts_are_png_at_slack_preview_size(png):
    """Every chart is a PNG of exactly 1200x600 pixels."""
    data = png()

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_size(data) == (WIDTH_PX, HEIGHT_PX) == (1200, 600)


def test_gap_is_shaded_exactly_where_provider_exceeds_gateway():
    """One shaded polygon per run of periods with provider > gateway, and only there."""
    periods = hours(6)
    provider = [10, 50, 60, 5, 70, 70]
    gateway = [10, 20, 20, 5, 30, 80]

    figure = build_coverage_figure("m", periods, provider, gateway, HOUR, "UTC", BOX)

    paths = gap_collection(figure).get_paths()
    extents = [x_extent(p.vertices) for p in paths]
    assert extents == [(periods[1], periods[3]), (periods[4], periods[5])]
    first = paths[0].vertices
    assert (first[:, 1].min(), first[:, 1].max()) == (20, 60)
    second = paths[1].vertices
    assert (second[:, 1].min(), second[:, 1].max()) == (30, 70)


def test_gap_shading_stops_at_a_missing_period():
    """A missing period splits the shading: nothing is drawn over the hole."""
    periods = [START, START + timedelta(hours=1), START + timedelta(hours=4)]

    figure = build_coverage_figure("m", periods, [9, 9, 9], [1, 1, 1], HOUR, "UTC", BOX)

    extents = [x_extent(p.vertices) for p in gap_collection(figure).get_paths()]
    assert extents == [
        (START, START + timedelta(hours=2)),
        (START + timedelta(hours=4), START + timedelta(hours=5)),
    ]


def test_no_shading_when_gateway_covers_everything():
    """Without a gap there is no shaded polygon at all."""
    figure = build_coverage_figure(
        "m", hours(3), [1, 2, 3], [1, 2, 4], HOUR, "UTC", BOX
    )

    assert [c.get_gid() for c in figure.axes[0].collections] == []


def test_shaded_gap_is_red_in_the_png_and_covered_period_is_not():
    """Pixels inside the gap are red-ish; pixels of a covered period are white."""
    periods = hours(6)
    figure = build_coverage_figure(
        "m",
        periods,
        [10, 10, 90, 90, 10, 10],
        [10, 10, 10, 10, 10, 10],
        HOUR,
        "UTC",
        BOX,
    )
    axes = figure.axes[0]

    image = imread(io.BytesIO(figure_png(figure)))

    def pixel(when: datetime, value: float) -> np.ndarray:
        x, y = axes.transData.transform((mdates.date2num(when), value))
        return image[HEIGHT_PX - round(y), round(x)][:3]

    red, green, blue = pixel(periods[2] + timedelta(minutes=30), 50)
    assert red > 0.9 and green < 0.85 and blue < 0.85
    assert pixel(periods[4] + timedelta(minutes=30), 70).tolist() == [1.0, 1.0, 1.0]


def test_missing_periods_leave_a_gap_at_their_real_time():
    """Bars sit at their real times, so a missing stretch shows as empty space."""
    periods = [START, START + timedelta(hours=1), START + timedelta(hours=5)]

    figure = build_usage_figure("m", periods, [3, 4, 5], HOUR, "UTC")

    bars = figure.axes[0].patches
    lefts = [mdates.num2date(b.get_x(), UTC) for b in bars]
    steps = [(b - a).total_seconds() for a, b in itertools.pairwise(lefts)]
    assert [round(s) for s in steps] == [HOUR, 4 * HOUR]
    assert [b.get_height() for b in bars] == [3, 4, 5]


def test_step_lines_break_at_a_missing_period():
    """Provider and gateway lines are broken (NaN) across a missing period."""
    periods = [START, START + timedelta(hours=3)]

    figure = build_coverage_figure("m", periods, [4, 6], [4, 6], HOUR, "UTC", BOX)

    provider_line = next(
        line for line in figure.axes[0].lines if line.get_label() == "Provider (billed)"
    )
    xs = provider_line.get_xdata()
    assert np.isnan(xs).sum() == 2
    ends = [mdates.num2date(x, UTC) for x in xs if not np.isnan(x)]
    assert ends == [
        START,
        START + timedelta(hours=1),
        periods[1],
        periods[1] + timedelta(hours=1),
    ]


# Clocks in Berlin go back from 03:00 CEST to 02:00 CET at 01:00 UTC on 2026-10-25,
# so two-hourly local ticks are three hours apart in UTC across the change.
TICKS_ACROSS_DST = {
    "Europe/Berlin": {
        datetime(2026, 10, 24, 20, tzinfo=UTC): "22:00",
        datetime(2026, 10, 24, 22, tzinfo=UTC): "Oct-25",
        datetime(2026, 10, 25, 0, tzinfo=UTC): "02:00",
        datetime(2026, 10, 25, 3, tzinfo=UTC): "04:00",
        datetime(2026, 10, 25, 5, tzinfo=UTC): "06:00",
        datetime(2026, 10, 25, 7, tzinfo=UTC): "08:00",
    },
    "UTC": {
        datetime(2026, 10, 24, 20, tzinfo=UTC): "20:00",
        datetime(2026, 10, 24, 22, tzinfo=UTC): "22:00",
        datetime(2026, 10, 25, 0, tzinfo=UTC): "Oct-25",
        datetime(2026, 10, 25, 2, tzinfo=UTC): "02:00",
        datetime(2026, 10, 25, 4, tzinfo=UTC): "04:00",
        datetime(2026, 10, 25, 6, tzinfo=UTC): "06:00",
        datetime(2026, 10, 25, 8, tzinfo=UTC): "08:00",
    },
}


@pytest.mark.parametrize("tz", ["Europe/Berlin", "UTC"], ids=["berlin-dst-end", "utc"])
def test_tick_labels_are_in_the_requested_zone_across_dst(tz):
    """Ticks read local wall-clock time, including after clocks go back."""
    periods = hours(12, datetime(2026, 10, 24, 20, tzinfo=UTC))
    figure = build_usage_figure("m", periods, [5] * 12, HOUR, tz)
    axes = figure.axes[0]

    figure.canvas.draw()

    labels = {
        mdates.num2date(tick, UTC): label.get_text()
        for tick, label in zip(axes.get_xticks(), axes.get_xticklabels())
    }
    assert labels == TICKS_ACROSS_DST[tz]
    assert axes.get_xlabel() == f"Time ({tz})"


def test_totals_box_prints_the_figures():
    """The box beside the chart shows totals, coverage, cost and the verdict."""
    figure = build_coverage_figure("m", hours(2), [9, 9], [1, 9], HOUR, "UTC", BOX)

    box = next(t for t in figure.axes[1].texts if t.get_gid() == "totals")

    assert box.get_text() == format_box(BOX)
    assert box.get_text().splitlines() == [
        "Provider calls      12,345",
        "Gateway calls        4,370",
        "Coverage             35.4%",
        "Uncovered calls      7,975",
        "Uncovered cost   $1,234.56",
        "",
        "Verdict: LIKELY UNAUTHORIZED",
    ]


def test_totals_box_without_coverage_or_price_says_n_a():
    """Unknown coverage and unknown price print as n/a, not as zero."""
    box = CoverageBox(0, 3, None, 0, None)

    assert format_box(box).splitlines() == [
        "Provider calls     0",
        "Gateway calls      3",
        "Coverage         n/a",
        "Uncovered calls    0",
        "Uncovered cost   n/a",
    ]


def test_title_with_dollar_sign_is_printed_verbatim():
    """A title is text, never matplotlib math, so a `$` cannot break rendering."""
    figure = build_usage_figure("cost $5 · m", hours(2), [1, 2], HOUR, "UTC")

    png = figure_png(figure)

    assert figure.get_suptitle() == "cost $5 · m"
    assert png_size(png) == (1200, 600)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(
            lambda: build_usage_figure("t", [], [], HOUR, "UTC"), id="usage-empty"
        ),
        pytest.param(
            lambda: build_usage_figure("t", hours(2), [0, 0], HOUR, "UTC"),
            id="usage-zero",
        ),
        pytest.param(
            lambda: build_coverage_figure("t", [], [], [], HOUR, "UTC", BOX),
            id="coverage-empty",
        ),
    ],
)
def test_empty_window_says_no_traffic(build):
    """No data gives a titled chart that says so instead of an error."""
    figure = build()

    assert [t.get_text() for t in figure.texts] == ["t", NO_TRAFFIC]
    assert figure.get_suptitle() == "t"
    assert figure.axes == []


@pytest.mark.parametrize(
    "tz",
    ["Mars/Olympus_Mons", "../etc/passwd", ""],
    ids=["unknown", "path", "blank"],
)
def test_invalid_time_zone_is_a_config_error(tz):
    """A zone that is not an IANA name is reported as configuration, with the name."""
    with pytest.raises(ConfigError) as caught:
        usage_chart("m", hours(1), [1], HOUR, tz)

    assert str(caught.value) == (
        f"time zone must be an IANA name such as Europe/Berlin or UTC; got {tz!r}"
    )


def test_series_length_must_match_periods():
    """A series with the wrong number of values is refused with both counts."""
    with pytest.raises(ValueError) as caught:
        coverage_chart("m", hours(3), [1, 2, 3], [1, 2], HOUR, "UTC", BOX)

    assert str(caught.value) == "gateway must have one value per period (3); got 2"


def test_naive_periods_are_refused():
    """Periods must carry a time zone; a naive one is named in the error."""
    with pytest.raises(ValueError) as caught:
        usage_chart("m", [datetime(2026, 1, 1)], [1], HOUR, "UTC")

    assert (
        str(caught.value) == "periods must be time-zone aware; got 2026-01-01T00:00:00"
    )


@pytest.mark.parametrize(
    ("seconds", "label"),
    [
        (60, "1 min"),
        (300, "5 min"),
        (3600, "1 h"),
        (21600, "6 h"),
        (86400, "1 day"),
        (172800, "2 days"),
        (90, "90 s"),
    ],
    ids=["1m", "5m", "1h", "6h", "1d", "2d", "odd"],
)
def test_period_label(seconds, label):
    """Periods are named in the unit people use."""
    assert period_label(seconds) == label


async def test_charts_render_the_same_in_worker_threads():
    """Rendering in parallel worker threads gives the bytes a serial render gives."""
    periods = hours(24)
    provider = [i * 7 % 50 + 10 for i in range(24)]
    gateway = [i * 5 % 30 for i in range(24)]

    def render() -> bytes:
        return coverage_chart("m", periods, provider, gateway, HOUR, "UTC", BOX)

    serial = render()
    parallel = await asyncio.gather(*(asyncio.to_thread(render) for _ in range(3)))

    assert parallel == [serial] * 3


def test_time_axis_covers_the_whole_window():
    """Quiet hours at either end of the window are shown, not cut off."""
    window = (START - timedelta(hours=3), START + timedelta(hours=5, minutes=40))

    figure = build_coverage_figure(
        "m", hours(2), [9, 9], [1, 1], HOUR, "UTC", BOX, span=window
    )

    left, right = figure.axes[0].get_xlim()
    assert (mdates.num2date(left, UTC), mdates.num2date(right, UTC)) == window


def test_period_in_progress_is_greyed_and_its_step_stops_at_the_window_end():
    """The partial last period is marked, and no line runs past the window's end."""
    end = START + timedelta(hours=1, minutes=45)
    figure = build_coverage_figure(
        "m", hours(2), [9, 4], [9, 1], HOUR, "UTC", BOX, span=(START, end)
    )
    axes = figure.axes[0]

    (band,) = [p for p in axes.patches if p.get_gid() == IN_PROGRESS_GID]
    left, width = band.get_x(), band.get_width()
    assert [mdates.num2date(x, UTC) for x in (left, left + width)] == [
        START + timedelta(hours=1),
        end,
    ]
    provider_line = next(
        line for line in axes.lines if line.get_label() == "Provider (billed)"
    )
    last = max(x for x in provider_line.get_xdata() if not np.isnan(x))
    assert mdates.num2date(last, UTC) == end
    assert IN_PROGRESS_LABEL in axes.get_legend_handles_labels()[1]


def test_a_period_that_just_began_is_left_off_the_axis():
    """Ten minutes into an hour, that hour would be a misleading sliver: not drawn."""
    end = START + timedelta(hours=1, minutes=10)
    figure = build_coverage_figure(
        "m", hours(2), [9, 1], [9, 0], HOUR, "UTC", BOX, span=(START, end)
    )
    axes = figure.axes[0]

    right = mdates.num2date(axes.get_xlim()[1], UTC)
    provider_line = next(
        line for line in axes.lines if line.get_label() == "Provider (billed)"
    )
    drawn = [mdates.num2date(x, UTC) for x in provider_line.get_xdata()
             if not np.isnan(x)]  # fmt: skip
    assert right == START + timedelta(hours=1)
    assert drawn == [START, START + timedelta(hours=1)]
    assert [p for p in axes.patches if p.get_gid() == IN_PROGRESS_GID] == []


def test_no_band_when_the_window_ends_on_a_period_boundary():
    """A window that ends where a period ends has no period in progress."""
    figure = build_coverage_figure(
        "m", hours(2), [9, 4], [9, 1], HOUR, "UTC", BOX,
        span=(START, START + timedelta(hours=2)),
    )  # fmt: skip

    assert [p for p in figure.axes[0].patches if p.get_gid() == IN_PROGRESS_GID] == []


def test_a_series_at_zero_is_drawn_over_the_axis_line():
    """A gateway that logged nothing shows as a green line, not as no line."""
    periods = hours(4)
    figure = build_coverage_figure(
        "m", periods, [20, 20, 20, 20], [0, 0, 0, 0], HOUR, "UTC", BOX
    )
    axes = figure.axes[0]

    image = imread(io.BytesIO(figure_png(figure)))

    x, y = axes.transData.transform((mdates.date2num(periods[1]), 0))
    red, green, blue = image[HEIGHT_PX - round(y), round(x)][:3]
    assert green > red + 0.2 and green > blue + 0.2


@pytest.mark.parametrize(
    ("span", "message"),
    [
        (
            (START + timedelta(hours=1), START + timedelta(hours=3)),
            "periods must lie within the span 2026-05-04T09:00:00+00:00 to "
            "2026-05-04T11:00:00+00:00; got 2026-05-04T08:00:00+00:00 to "
            "2026-05-04T09:00:00+00:00",
        ),
        (
            (START, START),
            "span must end after it starts; got 2026-05-04 08:00:00+00:00 to "
            "2026-05-04 08:00:00+00:00",
        ),
        (
            (START.replace(tzinfo=None), START + timedelta(hours=2)),
            "span must be time-zone aware; got 2026-05-04 08:00:00 to "
            "2026-05-04 10:00:00+00:00",
        ),
    ],
    ids=["data-outside", "empty", "naive"],
)
def test_unusable_spans_are_refused(span, message):
    """A window that does not contain the data is a caller's mistake, named."""
    with pytest.raises(ValueError) as caught:
        build_coverage_figure(
            "m", hours(2), [1, 1], [1, 1], HOUR, "UTC", BOX, span=span
        )

    assert str(caught.value) == message
