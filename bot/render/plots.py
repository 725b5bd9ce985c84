"""PNG charts of usage and coverage, sized and lettered for a Slack preview.

Everything here is a pure function of plain data. It builds `Figure` objects
directly instead of going through pyplot, whose global state is not thread-safe,
so charts can be rendered in a worker thread.
"""

import io
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bot.errors import ConfigError

# Slack shows image previews at about 1200x600; this renders at exactly that size.
WIDTH_PX = 1200
HEIGHT_PX = 600
_DPI = 100

NO_TRAFFIC = "no traffic in this window"
UNCOVERED_GID = "uncovered"
DEFAULT_ROLLING_PERIODS = 4

_PROVIDER_COLOR = "#1f5fa8"
_GATEWAY_COLOR = "#2e9e5b"
_GAP_COLOR = "#d62728"
_BAR_COLOR = "#1f5fa8"
_TITLE_SIZE = 19
_LABEL_SIZE = 14
_TICK_SIZE = 13
_BOX_SIZE = 14
_IN_PROGRESS_COLOR = "#e6e6e6"
IN_PROGRESS_GID = "in-progress"
IN_PROGRESS_LABEL = "Period in progress"

# The window a chart is about, [start, end), as time-zone aware moments.
Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class CoverageBox:
    """Totals printed beside the coverage chart.

    `coverage` is a fraction (0.354 prints as 35.4%); None means there was nothing
    to compare. `uncovered_cost_usd` is None when the model has no known price.
    """

    provider_total: int
    gateway_total: int
    coverage: float | None
    uncovered: int
    uncovered_cost_usd: float | None
    label: str | None = None


def usage_chart(
    title: str,
    periods: list[datetime],
    invocations: list[int],
    period_seconds: int,
    tz: str,
) -> bytes:
    """A bar chart of invocations per period, as PNG bytes."""
    figure = build_usage_figure(title, periods, invocations, period_seconds, tz)
    return figure_png(figure)


def coverage_chart(
    title: str,
    periods: list[datetime],
    provider: list[int],
    gateway: list[int],
    period_seconds: int,
    tz: str,
    totals: CoverageBox,
    *,
    rolling_periods: int = DEFAULT_ROLLING_PERIODS,
    span: Span | None = None,
) -> bytes:
    """Provider against gateway invocations with the uncovered gap shaded, as PNG."""
    figure = build_coverage_figure(
        title,
        periods,
        provider,
        gateway,
        period_seconds,
        tz,
        totals,
        rolling_periods=rolling_periods,
        span=span,
    )
    return figure_png(figure)


def figure_png(figure: Figure) -> bytes:
    """Render a figure to PNG bytes at its own size."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def build_usage_figure(
    title: str,
    periods: list[datetime],
    invocations: list[int],
    period_seconds: int,
    tz: str,
) -> Figure:
    """The usage chart as a `Figure`, for callers that inspect it before saving."""
    zone = parse_zone(tz)
    _check_series(periods, period_seconds, invocations=invocations)
    if not any(invocations):
        return _no_traffic_figure(title)

    figure, axes = _chart_frame(title)
    period_days = period_seconds / 86400
    centers = [_day_number(p) + period_days / 2 for p in periods]
    axes.bar(centers, invocations, width=period_days * 0.85, color=_BAR_COLOR)

    _style_time_axis(axes, zone, tz, periods, period_seconds)
    axes.set_ylabel(f"Invocations per {period_label(period_seconds)}")
    return figure


def build_coverage_figure(
    title: str,
    periods: list[datetime],
    provider: list[int],
    gateway: list[int],
    period_seconds: int,
    tz: str,
    totals: CoverageBox,
    *,
    rolling_periods: int = DEFAULT_ROLLING_PERIODS,
    span: Span | None = None,
) -> Figure:
    """The coverage chart as a `Figure`, for callers that inspect it before saving.

    `span` is the window asked about: the time axis covers all of it, so periods
    without data at either end show as empty time, and a last period still in
    progress at the window's end is marked as such.
    """
    zone = parse_zone(tz)
    _check_series(periods, period_seconds, provider=provider, gateway=gateway)
    _check_span(span, periods, period_seconds)
    if rolling_periods < 1:
        raise ValueError(f"rolling_periods must be at least 1; got {rolling_periods}")
    if not any(provider) and not any(gateway):
        return _no_traffic_figure(title)

    if span is not None:
        span = _visible_span(span, periods, period_seconds)
        shown = [i for i, start in enumerate(periods) if start < span[1]]
        periods = [periods[i] for i in shown]
        provider = [provider[i] for i in shown]
        gateway = [gateway[i] for i in shown]

    figure, axes, side = _chart_frame_with_side(title)
    _draw_gap(axes, periods, provider, gateway, period_seconds)
    for name, values, color in (
        ("Provider (billed)", provider, _PROVIDER_COLOR),
        ("Gateway (logged)", gateway, _GATEWAY_COLOR),
    ):
        _draw_steps(axes, periods, values, period_seconds, color, name, span)
        _draw_rolling_mean(
            axes, periods, values, period_seconds, rolling_periods, color
        )

    _style_time_axis(axes, zone, tz, periods, period_seconds, span)
    axes.set_ylabel(f"Invocations per {period_label(period_seconds)}")
    axes.set_ylim(bottom=0)
    if span is not None:
        _mark_period_in_progress(axes, span, period_seconds)
    _draw_side_panel(side, axes, totals, rolling_periods, period_seconds)
    return figure


def parse_zone(tz: str) -> ZoneInfo:
    """The IANA time zone named `tz`, or `ConfigError` saying what was expected."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"time zone must be an IANA name such as Europe/Berlin or UTC; got {tz!r}"
        ) from None


def period_label(period_seconds: int) -> str:
    """A period in the unit people say it in: `5 min`, `1 h`, `1 day`."""
    for unit_seconds, unit in ((86400, "day"), (3600, "h"), (60, "min")):
        if period_seconds % unit_seconds == 0:
            count = period_seconds // unit_seconds
            plural = "s" if unit == "day" and count > 1 else ""
            return f"{count} {unit}{plural}"
    return f"{period_seconds} s"


def format_box(totals: CoverageBox) -> str:
    """The totals as aligned lines of text, the way the chart prints them."""
    coverage = "n/a" if totals.coverage is None else f"{totals.coverage:.1%}"
    cost = (
        "n/a"
        if totals.uncovered_cost_usd is None
        else f"${totals.uncovered_cost_usd:,.2f}"
    )
    rows = (
        ("Provider calls", f"{totals.provider_total:,}"),
        ("Gateway calls", f"{totals.gateway_total:,}"),
        ("Coverage", coverage),
        ("Uncovered calls", f"{totals.uncovered:,}"),
        ("Uncovered cost", cost),
    )
    width = max(len(value) for _, value in rows)
    lines = [f"{name:<17}{value:>{width}}" for name, value in rows]
    if totals.label:
        lines += ["", totals.label]
    return "\n".join(lines)


def _check_series(
    periods: Sequence[datetime], period_seconds: int, **series: Sequence[int]
) -> None:
    if period_seconds <= 0:
        raise ValueError(f"period_seconds must be positive; got {period_seconds}")
    for name, values in series.items():
        if len(values) != len(periods):
            raise ValueError(
                f"{name} must have one value per period ({len(periods)}); "
                f"got {len(values)}"
            )
    naive = next((p for p in periods if p.utcoffset() is None), None)
    if naive is not None:
        raise ValueError(f"periods must be time-zone aware; got {naive.isoformat()}")
    if any(b <= a for a, b in itertools.pairwise(periods)):
        raise ValueError("periods must be strictly increasing")


def _check_span(
    span: Span | None, periods: Sequence[datetime], period_seconds: int
) -> None:
    if span is None:
        return
    start, end = span
    if start.utcoffset() is None or end.utcoffset() is None:
        raise ValueError(f"span must be time-zone aware; got {start} to {end}")
    if end <= start:
        raise ValueError(f"span must end after it starts; got {start} to {end}")
    if periods and (periods[0] < start or periods[-1] >= end):
        raise ValueError(
            f"periods must lie within the span {start.isoformat()} to "
            f"{end.isoformat()}; got {periods[0].isoformat()} to "
            f"{periods[-1].isoformat()}"
        )


def _chart_frame(title: str) -> tuple[Figure, Axes]:
    figure = _blank_figure()
    axes = figure.add_subplot()
    figure.suptitle(title, fontsize=_TITLE_SIZE, fontweight="bold", parse_math=False)
    return figure, axes


def _chart_frame_with_side(title: str) -> tuple[Figure, Axes, Axes]:
    figure = _blank_figure()
    grid = figure.add_gridspec(1, 2, width_ratios=(2.9, 1))
    axes = figure.add_subplot(grid[0, 0])
    side = figure.add_subplot(grid[0, 1])
    side.set_axis_off()
    figure.suptitle(title, fontsize=_TITLE_SIZE, fontweight="bold", parse_math=False)
    return figure, axes, side


def _blank_figure() -> Figure:
    return Figure(
        figsize=(WIDTH_PX / _DPI, HEIGHT_PX / _DPI), dpi=_DPI, layout="constrained"
    )


def _no_traffic_figure(title: str) -> Figure:
    figure = _blank_figure()
    figure.suptitle(title, fontsize=_TITLE_SIZE, fontweight="bold", parse_math=False)
    figure.text(
        0.5, 0.5, NO_TRAFFIC, ha="center", va="center", fontsize=24, color="#555555"
    )
    return figure


def _style_time_axis(
    axes: Axes,
    zone: ZoneInfo,
    tz: str,
    periods: Sequence[datetime],
    period_seconds: int,
    span: Span | None = None,
) -> None:
    # matplotlib.dates ships without annotations for these constructors.
    locator = mdates.AutoDateLocator(  # type: ignore[no-untyped-call]
        tz=zone, minticks=4, maxticks=10
    )
    formatter = mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
        locator, tz=zone
    )
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(formatter)
    first, end = span or (periods[0], periods[-1] + timedelta(seconds=period_seconds))
    axes.set_xlim(_day_number(first), _day_number(end))
    axes.set_xlabel(f"Time ({tz})", fontsize=_LABEL_SIZE)
    axes.yaxis.label.set_fontsize(_LABEL_SIZE)
    axes.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.tick_params(labelsize=_TICK_SIZE)
    axes.xaxis.get_offset_text().set_fontsize(_TICK_SIZE)
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)


def _day_number(when: datetime) -> float:
    """Matplotlib's own position for a moment on a date axis."""
    return float(mdates.date2num(when))  # type: ignore[no-untyped-call]


def _runs(periods: Sequence[datetime], period_seconds: int) -> Iterator[range]:
    """Index ranges of periods that follow each other with no period missing."""
    step = timedelta(seconds=period_seconds)
    start = 0
    for index in range(1, len(periods) + 1):
        if index == len(periods) or periods[index] - periods[index - 1] != step:
            yield range(start, index)
            start = index


def _draw_steps(
    axes: Axes,
    periods: Sequence[datetime],
    values: Sequence[int],
    period_seconds: int,
    color: str,
    name: str,
    span: Span | None = None,
) -> None:
    xs: list[float] = []
    ys: list[float] = []
    period_days = period_seconds / 86400
    limit = math.inf if span is None else _day_number(span[1])
    for run in _runs(periods, period_seconds):
        xs += [_day_number(periods[i]) for i in run]
        ys += [float(values[i]) for i in run]
        # Repeat the last value at the period's end so its step has a width, then
        # break the line: a missing period must show as a gap. A period still in
        # progress ends where the window does.
        xs += [min(xs[-1] + period_days, limit), math.nan]
        ys += [ys[-1], math.nan]
    # Above the axis line and unclipped: a series that stays at zero must show.
    axes.plot(
        xs,
        ys,
        drawstyle="steps-post",
        color=color,
        linewidth=2.2,
        label=name,
        zorder=3,
        clip_on=False,
    )


def _visible_span(span: Span, periods: Sequence[datetime], period_seconds: int) -> Span:
    """The span, or the span up to its last whole period if the next just began.

    A period a few minutes old would be a sliver at the right edge whose low,
    partial counts read as a sudden drop; it is left off the chart (its calls are
    still in the totals) until it is half over.
    """
    start, end = span
    into = int(end.timestamp()) % period_seconds
    cut = end - timedelta(seconds=into)
    if 0 < into < period_seconds / 2 and cut > start and periods[0] < cut:
        return start, cut
    return span


def _mark_period_in_progress(axes: Axes, span: Span, period_seconds: int) -> None:
    """Grey out the last period when the window ends inside it.

    Its counts are partial, so its lower value is no drop in traffic.
    """
    end = span[1]
    into = int(end.timestamp()) % period_seconds
    if into == 0:
        return
    began = max(end - timedelta(seconds=into), span[0])
    band = axes.axvspan(
        _day_number(began),
        _day_number(end),
        facecolor=_IN_PROGRESS_COLOR,
        edgecolor="none",
        zorder=0,
        label=IN_PROGRESS_LABEL,
    )
    band.set_gid(IN_PROGRESS_GID)


def _draw_rolling_mean(
    axes: Axes,
    periods: Sequence[datetime],
    values: Sequence[int],
    period_seconds: int,
    window: int,
    color: str,
) -> None:
    span = timedelta(seconds=period_seconds * window)
    half = period_seconds / 86400 / 2
    xs: list[float] = []
    ys: list[float] = []
    for run in _runs(periods, period_seconds):
        for i in run:
            recent = [
                values[j] for j in run if periods[i] - span < periods[j] <= periods[i]
            ]
            xs.append(_day_number(periods[i]) + half)
            ys.append(sum(recent) / len(recent))
        xs.append(math.nan)
        ys.append(math.nan)
    axes.plot(xs, ys, color=color, linewidth=1.6, linestyle="--", alpha=0.75)


def _draw_gap(
    axes: Axes,
    periods: Sequence[datetime],
    provider: Sequence[int],
    gateway: Sequence[int],
    period_seconds: int,
) -> None:
    polygons: list[list[tuple[float, float]]] = []
    for run in _runs(periods, period_seconds):
        short: list[int] = []
        for i in [*run, None]:
            if i is not None and provider[i] > gateway[i]:
                short.append(i)
            elif short:
                polygons.append(
                    _step_band(periods, provider, gateway, short, period_seconds)
                )
                short = []

    if not polygons:
        return
    shading = PolyCollection(
        polygons,
        facecolors=_GAP_COLOR,
        alpha=0.28,
        edgecolors="none",
        label="Gap: provider > gateway",
    )
    shading.set_gid(UNCOVERED_GID)
    axes.add_collection(shading)


def _step_band(
    periods: Sequence[datetime],
    upper: Sequence[int],
    lower: Sequence[int],
    indices: Sequence[int],
    period_seconds: int,
) -> list[tuple[float, float]]:
    """The outline between two step lines over consecutive periods."""
    period_days = period_seconds / 86400
    bottom: list[tuple[float, float]] = []
    top: list[tuple[float, float]] = []
    for i in indices:
        left = _day_number(periods[i])
        right = left + period_days
        bottom += [(left, lower[i]), (right, lower[i])]
        top += [(left, upper[i]), (right, upper[i])]
    return bottom + top[::-1]


def _draw_side_panel(
    side: Axes,
    axes: Axes,
    totals: CoverageBox,
    rolling_periods: int,
    period_seconds: int,
) -> None:
    handles, labels = axes.get_legend_handles_labels()
    mean_label = f"dashed: mean of {rolling_periods} x {period_label(period_seconds)}"
    # Inset a little: the box's padding would otherwise touch the plot's edge.
    side.text(
        0.04,
        1.0,
        format_box(totals),
        transform=side.transAxes,
        va="top",
        ha="left",
        family="monospace",
        fontsize=_BOX_SIZE,
        bbox={"boxstyle": "round,pad=0.6", "facecolor": "#f4f4f4", "edgecolor": "#999"},
        gid="totals",
        # A dollar sign would otherwise start matplotlib's math mode.
        parse_math=False,
    )
    side.legend(
        handles,
        labels,
        loc="lower left",
        bbox_to_anchor=(0.0, 0.0),
        fontsize=_TICK_SIZE - 1,
        frameon=False,
        title=mean_label,
        title_fontsize=_TICK_SIZE - 2,
    )
