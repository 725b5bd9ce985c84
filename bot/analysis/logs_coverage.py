"""Does the gateway see every call the service logged? Journal vs gateway per model."""

from dataclasses import dataclass, field
from enum import StrEnum

from bot.sources.records import Counts, SourceFailure
from bot.sources.ssh import HostReport
from bot.windows import Window

DEFAULT_TOLERANCE = 0.05


class LogsVerdict(StrEnum):
    """How the gateway's events compare with the service's own log."""

    CONSISTENT = "consistent"
    GATEWAY_MISSING_EVENTS = "gateway-missing-events"
    GATEWAY_EXTRA_EVENTS = "gateway-extra-events"
    # One side did not answer: what the other counted is shown, not judged.
    NO_DATA = "no-data"


@dataclass(frozen=True)
class LogsComparison:
    """One model's calls and tokens as the journal and the gateway counted them."""

    model_id: str
    logs: Counts | None
    gateway: Counts | None
    ratio: float | None
    verdict: LogsVerdict


def compare_logs_with_gateway(
    logs: dict[str, Counts] | None,
    gateway: dict[str, Counts] | None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[LogsComparison]:
    """Per model, gateway/logs for calls and input tokens, judged within tolerance.

    A side that did not answer is None: the other side's figures are still listed,
    each with the verdict `no-data`.
    """
    if logs is None or gateway is None:
        known = logs if logs is not None else gateway or {}
        return [
            LogsComparison(
                model_id,
                None if logs is None else counts,
                None if gateway is None else counts,
                None,
                LogsVerdict.NO_DATA,
            )
            for model_id, counts in sorted(known.items())
        ]

    comparisons = []
    for model_id in sorted(logs.keys() | gateway.keys()):
        logged = logs.get(model_id, Counts())
        seen = gateway.get(model_id, Counts())
        ratio = seen.invocations / logged.invocations if logged.invocations else None
        comparisons.append(
            LogsComparison(
                model_id, logged, seen, ratio, judge(logged, seen, tolerance)
            )
        )
    return comparisons


def judge(logs: Counts, gateway: Counts, tolerance: float) -> LogsVerdict:
    """Missing when the gateway is short on calls or input tokens, extra when over."""
    pairs = (
        (logs.invocations, gateway.invocations),
        (logs.input_tokens, gateway.input_tokens),
    )
    if any(seen < logged * (1 - tolerance) for logged, seen in pairs):
        return LogsVerdict.GATEWAY_MISSING_EVENTS
    if any(seen > logged * (1 + tolerance) for logged, seen in pairs):
        return LogsVerdict.GATEWAY_EXTRA_EVENTS
    return LogsVerdict.CONSISTENT


@dataclass
class LogsReport:
    window: Window
    models: list[LogsComparison]
    hosts: list[HostReport]
    errors: list[SourceFailure] = field(default_factory=list)
    logs_known: bool = True
    gateway_known: bool = True
