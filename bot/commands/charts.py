"""Charts for command answers, rendered off the event loop.

Matplotlib holds the GIL for the whole of a drawing (about 100 ms a chart). In a
thread of the server, that starves the event loop: when 50 commands arrived at
once, their acks waited behind the charts of the first ones. The server therefore
draws in worker processes (`draw_in_processes`); a terminal, which draws a chart
or two and nothing else, draws in a thread and saves the processes' start-up.

`bot.render.plots` is imported where a chart is drawn, not at the top: matplotlib
takes most of a second to import, which every terminal command, even one refused
for bad input, would otherwise pay.
"""

import asyncio
import concurrent.futures
import functools
import multiprocessing
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from typing import Any

from bot.analysis.coverage import CoverageReport, ModelCoverage, Verdict
from bot.analysis.usage import UsageReport

DRAWING_PROCESSES = 2
# Threads draw a few charts at a time, which leaves the loop some of the GIL.
_DRAWING = asyncio.Semaphore(2)
_processes: ProcessPoolExecutor | None = None


def draw_in_processes(workers: int = DRAWING_PROCESSES) -> None:
    """From now on, draw in worker processes, started (and warmed) at once."""
    global _processes
    if _processes is not None:
        return
    # spawn, not fork: forking the server, threads and all, is not safe.
    context = multiprocessing.get_context("spawn")
    _processes = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_exit_with_parent
    )
    # The pool starts a worker only when no other is free: each warm-up job keeps
    # its worker busy for a moment, so that all of them start now, not under load.
    concurrent.futures.wait([_processes.submit(_warm_up) for _ in range(workers)])


def _warm_up() -> None:
    """In a worker: load matplotlib now, so that the first chart is not slow."""
    import bot.render.plots  # noqa: F401

    time.sleep(0.2)


def _exit_with_parent() -> None:
    """In a worker: exit once the server is gone, however it went (even SIGKILL).

    An idle worker waits on its queue forever, and would outlive the server.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def stop_drawing_processes() -> None:
    """Back to threads; charts still being drawn in a process are abandoned."""
    global _processes
    if _processes is not None:
        _processes.shutdown(wait=False, cancel_futures=True)
        _processes = None


async def _draw(chart: Callable[..., bytes], **arguments: Any) -> bytes:
    if _processes is None:
        async with _DRAWING:
            return await asyncio.to_thread(chart, **arguments)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_processes, functools.partial(chart, **arguments))


def _usage_arguments(report: UsageReport, tz: str) -> dict[str, Any]:
    per_period: dict[datetime, int] = defaultdict(int)
    for series in report.series.values():
        for start, invocations in series:
            per_period[start] += invocations
    periods = sorted(per_period)

    names = [row.name or row.model_id for row in report.rows if row.counts.invocations]
    subject = names[0] if len(names) == 1 else "all models"
    return {
        "title": f"Invocations, {subject}, last {report.window.label}",
        "periods": periods,
        "invocations": [per_period[p] for p in periods],
        "period_seconds": report.window.period,
        "tz": tz,
    }


async def usage_png(report: UsageReport, tz: str) -> bytes:
    """The bar chart of invocations per period, drawn off the event loop."""
    from bot.render import plots

    return await _draw(plots.usage_chart, **_usage_arguments(report, tz))


def chart_subject(report: CoverageReport) -> ModelCoverage | None:
    """The model whose gap a chart should show: the worst one with any traffic."""
    for model in report.worst():
        if model.series and model.verdict not in (Verdict.NO_TRAFFIC, Verdict.NO_DATA):
            return model
    return None


def _coverage_arguments(
    report: CoverageReport, model: ModelCoverage, tz: str, note: str | None
) -> dict[str, Any]:
    label = f"Verdict: {model.verdict.value}" + (f"\n{note}" if note else "")
    from bot.render import plots

    box = plots.CoverageBox(
        provider_total=model.provider.invocations if model.provider else 0,
        gateway_total=model.gateway.invocations if model.gateway else 0,
        coverage=model.invocation_coverage,
        uncovered=model.uncovered.invocations,
        uncovered_cost_usd=model.uncovered_cost_usd,
        label=label,
    )
    return {
        "title": f"{model.name or model.model_id} · last {report.window.label}"
        " · provider vs gateway",
        "periods": [p.start for p in model.series],
        "provider": [p.provider for p in model.series],
        "gateway": [p.gateway for p in model.series],
        "period_seconds": report.window.period,
        "tz": tz,
        "totals": box,
        "span": (report.window.start, report.window.end),
    }


async def coverage_png(
    report: CoverageReport, model: ModelCoverage, tz: str, note: str | None = None
) -> bytes:
    """Provider against gateway with the gap shaded, drawn off the event loop.

    `note` adds a line under the verdict: the watcher's rule, when it alerts on cost.
    """
    arguments = _coverage_arguments(report, model, tz, note)
    from bot.render import plots

    return await _draw(plots.coverage_chart, **arguments)
