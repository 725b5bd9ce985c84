"""The watcher's state machine: what one evaluation saw, and what to do about it.

Pure functions of plain data. Each model is `ok`, `alerting` or `no-data`; an
episode opens with the alert and closes with the recovery notice, and a spell of
`no-data` inside it neither closes it nor counts towards recovering from it.
"""

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.analysis.coverage import ModelCoverage, Verdict
from bot.catalog import ModelSpec
from bot.config import CoverageThresholds, Settings
from bot.render import numbers
from bot.sources.records import SourceFailure
from bot.store import AlertStateRecord
from bot.windows import choose_period, parse_duration


class State(StrEnum):
    OK = "ok"
    ALERTING = "alerting"
    NO_DATA = "no-data"


class Seen(StrEnum):
    """What one evaluation saw for one model."""

    COVERED = "covered"
    GAP = "gap"
    SOURCE_FAILED = "source-failed"
    NO_TRAFFIC = "no-traffic"


class Action(StrEnum):
    """The one message (or none) an evaluation sends for a model."""

    NONE = "none"
    ALERT = "alert"
    UPDATE = "update"
    RECOVERY = "recovery"
    NO_DATA = "no-data"
    DATA_BACK = "data-back"


@dataclass(frozen=True)
class Policy:
    """How often to speak: from WATCH_RENOTIFY, WATCH_RECOVERY_CHECKS and friends."""

    renotify: timedelta
    recovery_checks: int
    cost_alert_usd: float
    thresholds: CoverageThresholds
    interval: timedelta = timedelta(minutes=5)
    window: timedelta = timedelta(hours=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Policy":
        return cls(
            renotify=timedelta(seconds=settings.watch_renotify),
            recovery_checks=max(1, settings.watch_recovery_checks),
            cost_alert_usd=settings.watch_cost_alert_usd,
            thresholds=settings.coverage,
            interval=timedelta(seconds=settings.watch_interval),
            window=parse_duration(settings.watch_window),
        )

    @property
    def period(self) -> timedelta:
        """The series' period, as `/coverage` picks it for WATCH_WINDOW."""
        return timedelta(seconds=choose_period(self.window, self.window))


@dataclass(frozen=True)
class Observation:
    """One model in one evaluation, reduced to what the state machine needs."""

    model: str
    seen: Seen
    reason: str
    window_start: datetime
    gap_began: datetime | None = None
    uncovered_cost_usd: float | None = None
    # What the last check interval alone shows: an episode is over when the new
    # calls are covered again, not when the attack has left the rolling window.
    recent: Seen | None = None
    # The rule a gap broke, short enough for the chart's box.
    rule: str | None = None

    @property
    def gap_now(self) -> bool:
        """Uncovered calls are still arriving (the episode goes on)."""
        if self.recent is not None and self.seen in (Seen.GAP, Seen.COVERED):
            return self.recent is Seen.GAP
        return self.seen is Seen.GAP

    @property
    def opens_episode(self) -> bool:
        """A gap in the window that is still growing: an old, closed gap that
        has not yet left the rolling window does not alert again."""
        return self.seen is Seen.GAP and self.recent in (None, Seen.GAP)


@dataclass(frozen=True)
class Step:
    """The action to take, the state before it, and the state to save after it."""

    action: Action
    before: AlertStateRecord
    after: AlertStateRecord


def model_key(model: ModelCoverage) -> str:
    """What alert states are stored under: the catalog name, else the provider ID."""
    return model.name or model.model_id


def coverage_floor(spec: ModelSpec | None, thresholds: CoverageThresholds) -> float:
    """The invocation coverage below which a model alerts.

    A model whose catalog baseline says the gateway normally sees less than
    `unauthorized_below` alerts only below its baseline minus the tolerance, so
    that its usual traffic is not an alert that never ends.
    """
    floor = thresholds.unauthorized_below
    if spec is not None and spec.baseline is not None:
        floor = min(floor, spec.baseline.invocations - thresholds.baseline_tolerance)
    return floor


def observe(
    model: ModelCoverage,
    errors: list[SourceFailure],
    window_start: datetime,
    policy: Policy,
    now: datetime | None = None,
) -> Observation:
    """Judge one model's coverage in the window, and in the last interval."""
    key = model_key(model)
    if model.provider is None or model.gateway is None:
        failed = "; ".join(f"{e.source}: {e.message}" for e in errors)
        reason = f"a source failed ({failed or 'no answer'})"
        return Observation(key, Seen.SOURCE_FAILED, reason, window_start)
    if model.verdict is Verdict.NO_TRAFFIC:
        return Observation(key, Seen.NO_TRAFFIC, "no traffic", window_start)

    share = model.invocation_coverage
    floor = coverage_floor(model.spec, policy.thresholds)
    cost = model.uncovered_cost_usd
    seen, reason, rule = Seen.COVERED, "covered", None
    if share is not None and share < floor:
        seen, rule = Seen.GAP, f"coverage < {numbers.share(floor)}"
        reason = (
            f"invocation coverage {numbers.share(share)} is below "
            f"{numbers.share(floor)}"
        )
    elif cost is not None and cost > policy.cost_alert_usd:
        seen, rule = Seen.GAP, f"cost > {numbers.usd(policy.cost_alert_usd)}"
        reason = (
            f"uncovered cost {numbers.usd(cost)} is above "
            f"{numbers.usd(policy.cost_alert_usd)}"
        )
    return Observation(
        key,
        seen,
        reason,
        window_start,
        gap_began=model.gap_began,
        uncovered_cost_usd=cost,
        recent=None if now is None else _recent(model, now, floor, policy),
        rule=rule,
    )


def _recent(model: ModelCoverage, now: datetime, floor: float, policy: Policy) -> Seen:
    """The periods the last interval overlaps: a gap while uncovered calls keep
    coming. With an interval shorter than the period, or a clock that is not on a
    period boundary, that is the current, partial period (and the one before it)."""
    since = now - policy.interval - policy.period
    points = [p for p in model.series if p.start > since]
    billed = sum(p.provider for p in points)
    logged = sum(p.gateway for p in points)
    if billed == 0 or logged >= billed:
        return Seen.COVERED
    if logged / billed < floor:
        return Seen.GAP

    # The window's cost per uncovered call, against the alert's cost pro rata.
    cost, calls = model.uncovered_cost_usd, model.uncovered.invocations
    if cost is None or calls == 0:
        return Seen.COVERED
    recent_cost = cost / calls * (billed - logged)
    allowance = policy.cost_alert_usd * (policy.interval / policy.window)
    return Seen.GAP if recent_cost > allowance else Seen.COVERED


def quiet(model: str, window_start: datetime) -> Observation:
    """A model the provider no longer reports at all: no traffic."""
    return Observation(model, Seen.NO_TRAFFIC, "no traffic", window_start)


def advance(
    record: AlertStateRecord, seen: Observation, now: datetime, policy: Policy
) -> Step:
    """The next state of one model, and the one message that goes with it."""
    state = State(record.state)
    base = dataclasses.replace(record, updated_at=now)
    if state is State.OK:
        return _from_ok(base, seen, now)
    if state is State.ALERTING:
        return _from_alerting(base, seen, now, policy)
    return _from_no_data(base, seen, now, policy)


def _from_ok(record: AlertStateRecord, seen: Observation, now: datetime) -> Step:
    if seen.opens_episode:
        return Step(Action.ALERT, record, _opened(record, seen, now))
    if seen.seen is Seen.SOURCE_FAILED:
        after = dataclasses.replace(
            record, state=State.NO_DATA.value, reason=seen.reason, ok_streak=0
        )
        return Step(Action.NO_DATA, record, after)
    return Step(Action.NONE, record, dataclasses.replace(record, reason=seen.reason))


def _from_alerting(
    record: AlertStateRecord, seen: Observation, now: datetime, policy: Policy
) -> Step:
    if seen.gap_now:
        after = dataclasses.replace(record, reason=seen.reason, ok_streak=0)
        after = _with_cost(after, seen)
        last = record.last_notified_at or record.episode_started_at or now
        if now - last >= policy.renotify:
            return Step(
                Action.UPDATE, record, dataclasses.replace(after, last_notified_at=now)
            )
        return Step(Action.NONE, record, after)
    if seen.seen in (Seen.COVERED, Seen.GAP):
        return _counted_ok(record, seen, policy)
    # No traffic inside an episode is not a recovery: nothing shows it is over.
    after = dataclasses.replace(
        record, state=State.NO_DATA.value, reason=seen.reason, ok_streak=0
    )
    return Step(Action.NO_DATA, record, after)


def _from_no_data(
    record: AlertStateRecord, seen: Observation, now: datetime, policy: Policy
) -> Step:
    in_episode = record.episode_started_at is not None
    # Outside an episode this state means a source failed, so any answer, even
    # "no traffic", is the data coming back.
    still = seen.seen is Seen.SOURCE_FAILED or (
        in_episode and seen.seen is Seen.NO_TRAFFIC
    )
    if still:
        return Step(
            Action.NONE, record, dataclasses.replace(record, reason=seen.reason)
        )
    if not in_episode:
        if seen.opens_episode:
            return Step(Action.ALERT, record, _opened(record, seen, now))
        # The no-data notice said the model could not be judged; say it can again.
        after = dataclasses.replace(
            record, state=State.OK.value, reason=seen.reason, ok_streak=0
        )
        return Step(Action.DATA_BACK, record, after)

    resumed = dataclasses.replace(record, state=State.ALERTING.value, ok_streak=0)
    if seen.gap_now:
        after = _with_cost(dataclasses.replace(resumed, reason=seen.reason), seen)
        return Step(
            Action.UPDATE, record, dataclasses.replace(after, last_notified_at=now)
        )
    return _counted_ok(resumed, seen, policy, before=record)


def _counted_ok(
    record: AlertStateRecord,
    seen: Observation,
    policy: Policy,
    before: AlertStateRecord | None = None,
) -> Step:
    streak = record.ok_streak + 1
    if streak >= policy.recovery_checks:
        closed = AlertStateRecord(
            model=record.model,
            updated_at=record.updated_at,
            state=State.OK.value,
            reason=seen.reason,
            episode_uncovered_cost_usd=record.episode_uncovered_cost_usd,
            version=record.version,
        )
        return Step(Action.RECOVERY, before or record, closed)
    after = dataclasses.replace(record, reason=seen.reason, ok_streak=streak)
    return Step(Action.NONE, before or record, after)


def _opened(
    record: AlertStateRecord, seen: Observation, now: datetime
) -> AlertStateRecord:
    return dataclasses.replace(
        record,
        state=State.ALERTING.value,
        reason=seen.reason,
        episode_started_at=now,
        gap_began_at=seen.gap_began or seen.window_start,
        last_notified_at=now,
        episode_uncovered_cost_usd=seen.uncovered_cost_usd or 0.0,
        ok_streak=0,
        channel=None,
        message_ts=None,
    )


def _with_cost(record: AlertStateRecord, seen: Observation) -> AlertStateRecord:
    """The episode has cost at least what the window shows now."""
    cost = max(record.episode_uncovered_cost_usd, seen.uncovered_cost_usd or 0.0)
    return dataclasses.replace(record, episode_uncovered_cost_usd=cost)


def changed(step: Step) -> bool:
    """Whether the step leaves anything worth writing (the time alone is not)."""
    return dataclasses.replace(step.before, updated_at=step.after.updated_at) != (
        step.after
    )
