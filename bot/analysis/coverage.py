"""Coverage: what the gateway logged as a share of what the provider billed.

Pure functions of plain data. A share below one means calls reached the provider
without passing the gateway; above one means the gateway logged calls that the
provider did not bill for this model (a mapping or fallback problem).
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.catalog import Catalog, ModelSpec
from bot.config import CoverageThresholds
from bot.sources.records import Counts, PeriodCounts, SourceFailure, totals_by_model
from bot.windows import Window

# Below this many calls a share says little; the gateway exceeding the provider by
# fewer calls than this is clock skew at the window's edges, not a finding.
MIN_EXCESS_CALLS = 5
# How many periods a gap still open at the window's end must span to be reported
# under a total that looks fine.
MIN_ONGOING_PERIODS = 2


class Verdict(StrEnum):
    LIKELY_UNAUTHORIZED = "likely-unauthorized"
    BELOW_BASELINE = "below-baseline"
    GATEWAY_EXCEEDS_PROVIDER = "gateway-exceeds-provider"
    NO_TRAFFIC = "no-traffic"
    NO_DATA = "no-data"
    OK = "ok"


@dataclass(frozen=True)
class PeriodCoverage:
    start: datetime
    provider: int
    gateway: int

    @property
    def coverage(self) -> float | None:
        return ratio(self.gateway, self.provider)


@dataclass(frozen=True)
class ModelCoverage:
    """One provider model ID: both sides, the shares, the gap and its cost."""

    model_id: str
    spec: ModelSpec | None
    provider: Counts | None
    gateway: Counts | None
    verdict: Verdict
    series: list[PeriodCoverage] = field(default_factory=list)
    gap_began: datetime | None = None
    gap_ended: datetime | None = None

    @property
    def name(self) -> str | None:
        return self.spec.name if self.spec else None

    def ongoing_gap(self) -> "PeriodCoverage | None":
        """Both sides summed since a gap began that has not ended, or None.

        A gap only one period long is left out: the last period is still filling
        up on both sides, at their own delays.
        """
        if self.gap_began is None or self.gap_ended is not None:
            return None
        since = [p for p in self.series if p.start >= self.gap_began]
        if len(since) < MIN_ONGOING_PERIODS:
            return None
        return PeriodCoverage(
            self.gap_began,
            sum(p.provider for p in since),
            sum(p.gateway for p in since),
        )

    @property
    def invocation_coverage(self) -> float | None:
        return self._share("invocations")

    @property
    def input_token_coverage(self) -> float | None:
        return self._share("input_tokens")

    @property
    def output_token_coverage(self) -> float | None:
        return self._share("output_tokens")

    def _share(self, field: str) -> float | None:
        if self.gateway is None or self.provider is None:
            return None
        return ratio(getattr(self.gateway, field), getattr(self.provider, field))

    @property
    def uncovered(self) -> Counts:
        """What the provider billed beyond what the gateway logged."""
        billed, logged = self.provider or Counts(), self.gateway or Counts()
        return Counts(
            max(0, billed.invocations - logged.invocations),
            max(0, billed.input_tokens - logged.input_tokens),
            max(0, billed.output_tokens - logged.output_tokens),
        )

    @property
    def uncovered_cost_usd(self) -> float | None:
        if self.spec is None or self.gateway is None or self.provider is None:
            return None
        gap = self.uncovered
        return self.spec.cost_usd(gap.input_tokens, gap.output_tokens)


@dataclass
class CoverageReport:
    window: Window
    provider: str
    models: list[ModelCoverage]
    errors: list[SourceFailure] = field(default_factory=list)

    @property
    def uncovered_cost_usd(self) -> float:
        return sum(m.uncovered_cost_usd or 0.0 for m in self.models)

    def worst(self) -> list[ModelCoverage]:
        """Models in the order a person should look at them."""
        rank = list(Verdict)
        return sorted(
            self.models,
            key=lambda m: (rank.index(m.verdict), -(m.uncovered_cost_usd or 0.0)),
        )


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def judge(
    provider: Counts | None,
    gateway: Counts | None,
    spec: ModelSpec | None,
    thresholds: CoverageThresholds,
) -> Verdict:
    """The verdict for one model's totals, first matching rule wins."""
    if gateway is None or provider is None:
        return Verdict.NO_DATA
    if provider.invocations == 0 and gateway.invocations == 0:
        return Verdict.NO_TRAFFIC

    excess = gateway.invocations - provider.invocations
    if (
        excess >= MIN_EXCESS_CALLS
        and gateway.invocations > provider.invocations * thresholds.gateway_excess_ratio
    ):
        return Verdict.GATEWAY_EXCEEDS_PROVIDER

    calls = ratio(gateway.invocations, provider.invocations)
    if calls is not None and calls < thresholds.unauthorized_below:
        return Verdict.LIKELY_UNAUTHORIZED

    if spec is not None and spec.baseline is not None:
        tokens = ratio(gateway.input_tokens, provider.input_tokens)
        tolerance = thresholds.baseline_tolerance
        if (calls is not None and calls < spec.baseline.invocations - tolerance) or (
            tokens is not None and tokens < spec.baseline.input_tokens - tolerance
        ):
            return Verdict.BELOW_BASELINE
    return Verdict.OK


def gap_bounds(
    series: list[PeriodCoverage], below: float
) -> tuple[datetime | None, datetime | None]:
    """When the latest run of low-coverage periods began, and ended (None: ongoing).

    Periods without billed calls neither start nor break a run.
    """
    began: datetime | None = None
    ended: datetime | None = None
    for point in series:
        share = point.coverage
        if share is None:
            continue
        if share < below:
            if began is None or ended is not None:
                began, ended = point.start, None
        elif began is not None and ended is None:
            ended = point.start
    return began, ended


def compare(
    window: Window,
    provider_name: str,
    catalog: Catalog,
    model_ids: list[str],
    billed: list[PeriodCounts] | None,
    logged: list[PeriodCounts] | None,
    thresholds: CoverageThresholds,
) -> CoverageReport:
    """Per model and per period, provider against gateway; None: that side failed."""
    billed_totals = totals_by_model(billed or [])
    logged_totals = totals_by_model(logged or [])
    wanted = list(dict.fromkeys([*model_ids, *billed_totals, *logged_totals]))

    models = []
    for model_id in wanted:
        spec = catalog.by_provider_id(provider_name, model_id)
        provider = None if billed is None else billed_totals.get(model_id, Counts())
        gateway = None if logged is None else logged_totals.get(model_id, Counts())
        series = _series(model_id, billed or [], logged or [])
        began, ended = gap_bounds(series, thresholds.unauthorized_below)
        models.append(
            ModelCoverage(
                model_id=model_id,
                spec=spec,
                provider=provider,
                gateway=gateway,
                verdict=judge(provider, gateway, spec, thresholds),
                series=series,
                gap_began=began,
                gap_ended=ended,
            )
        )
    return CoverageReport(window=window, provider=provider_name, models=models)


def _series(
    model_id: str, billed: list[PeriodCounts], logged: list[PeriodCounts]
) -> list[PeriodCoverage]:
    provider = {p.start: p.counts.invocations for p in billed if p.model_id == model_id}
    gateway = {p.start: p.counts.invocations for p in logged if p.model_id == model_id}
    return [
        PeriodCoverage(start, provider.get(start, 0), gateway.get(start, 0))
        for start in sorted(provider.keys() | gateway.keys())
    ]
