"""The watcher's state machine, without any server: transitions and their messages."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bot.analysis.coverage import ModelCoverage, PeriodCoverage, Verdict
from bot.catalog import Catalog
from bot.config import CoverageThresholds
from bot.sources.records import Counts
from bot.store import AlertStateRecord
from bot.watch.evaluate import (
    Action,
    Observation,
    Policy,
    Seen,
    State,
    advance,
    coverage_floor,
    observe,
)

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
POLICY = Policy(
    renotify=timedelta(hours=1),
    recovery_checks=2,
    cost_alert_usd=5.0,
    thresholds=CoverageThresholds(),
)
OPENED = AlertStateRecord(
    model="claude-large",
    updated_at=T0,
    state="alerting",
    channel="C1",
    message_ts="1.000001",
    episode_started_at=T0,
    gap_began_at=T0 - timedelta(minutes=10),
    last_notified_at=T0,
    episode_uncovered_cost_usd=6.0,
    version=3,
)
NEW = AlertStateRecord(model="claude-large", updated_at=T0)


def seen(
    kind: Seen, cost: float | None = None, recent: Seen | None = None
) -> Observation:
    return Observation(
        "claude-large", kind, kind.value, T0, uncovered_cost_usd=cost, recent=recent
    )


@pytest.mark.parametrize(
    ("record", "observation", "minutes", "action", "state", "streak"),
    [
        (NEW, seen(Seen.COVERED), 5, Action.NONE, State.OK, 0),
        (NEW, seen(Seen.NO_TRAFFIC), 5, Action.NONE, State.OK, 0),
        (NEW, seen(Seen.GAP, 9.0), 5, Action.ALERT, State.ALERTING, 0),
        (NEW, seen(Seen.SOURCE_FAILED), 5, Action.NO_DATA, State.NO_DATA, 0),
        (OPENED, seen(Seen.GAP), 55, Action.NONE, State.ALERTING, 0),
        (OPENED, seen(Seen.GAP), 60, Action.UPDATE, State.ALERTING, 0),
        (OPENED, seen(Seen.COVERED), 5, Action.NONE, State.ALERTING, 1),
        (OPENED, seen(Seen.SOURCE_FAILED), 5, Action.NO_DATA, State.NO_DATA, 0),
        (OPENED, seen(Seen.NO_TRAFFIC), 5, Action.NO_DATA, State.NO_DATA, 0),
        (NEW, seen(Seen.GAP, 9.0, Seen.GAP), 5, Action.ALERT, State.ALERTING, 0),
        (NEW, seen(Seen.GAP, 9.0, Seen.COVERED), 5, Action.NONE, State.OK, 0),
        (OPENED, seen(Seen.GAP, 9.0, Seen.COVERED), 5, Action.NONE, State.ALERTING, 1),
        (
            OPENED,
            seen(Seen.COVERED, 1.0, Seen.GAP),
            60,
            Action.UPDATE,
            State.ALERTING,
            0,
        ),
    ],
    ids=[
        "ok-stays-ok",
        "quiet-model-stays-ok",
        "gap-alerts",
        "failure-is-no-data",
        "no-update-before-renotify",
        "update-at-renotify",
        "first-ok-is-not-recovery",
        "failure-in-episode",
        "no-traffic-in-episode",
        "growing-gap-alerts",
        "old-gap-still-in-window-does-not-alert-again",
        "gap-stopped-counts-towards-recovery",
        "new-uncovered-calls-keep-the-episode-open",
    ],
)
def test_transitions(
    record: AlertStateRecord,
    observation: Observation,
    minutes: int,
    action: Action,
    state: State,
    streak: int,
) -> None:
    """Each state and sighting leads to one action and one next state."""
    step = advance(record, observation, T0 + timedelta(minutes=minutes), POLICY)

    assert (step.action, step.after.state, step.after.ok_streak) == (
        action,
        state,
        streak,
    )


def test_second_ok_recovers_and_closes_the_episode() -> None:
    """The recovery forgets the thread; the next alert opens a new one."""
    once = advance(OPENED, seen(Seen.COVERED), T0 + timedelta(minutes=5), POLICY)

    twice = advance(once.after, seen(Seen.COVERED), T0 + timedelta(minutes=10), POLICY)

    assert twice.action is Action.RECOVERY
    assert twice.before.message_ts == "1.000001"
    assert (twice.after.state, twice.after.message_ts) == ("ok", None)
    assert twice.after.episode_started_at is None


def test_no_data_then_ok_needs_the_full_streak() -> None:
    """Data coming back after a failure is one ok, never a recovery by itself."""
    failed = advance(OPENED, seen(Seen.SOURCE_FAILED), T0, POLICY).after

    back = advance(failed, seen(Seen.COVERED), T0 + timedelta(minutes=5), POLICY)
    again = advance(failed, seen(Seen.SOURCE_FAILED), T0, POLICY)

    assert (back.action, back.after.state, back.after.ok_streak) == (
        Action.NONE,
        "alerting",
        1,
    )
    assert again.action is Action.NONE


@pytest.mark.parametrize(
    "answer",
    [seen(Seen.COVERED), seen(Seen.NO_TRAFFIC), seen(Seen.GAP, 9.0, Seen.COVERED)],
    ids=["covered", "no-traffic", "old-gap"],
)
def test_data_coming_back_outside_an_episode_is_said(answer: Observation) -> None:
    """The no-data notice is closed by one data-back notice, whatever it shows."""
    failed = advance(NEW, seen(Seen.SOURCE_FAILED), T0, POLICY).after

    back = advance(failed, answer, T0 + timedelta(minutes=5), POLICY)
    again = advance(back.after, answer, T0 + timedelta(minutes=10), POLICY)

    assert (back.action, back.after.state) == (Action.DATA_BACK, "ok")
    assert again.action is Action.NONE


def test_the_gap_returning_after_no_data_updates_the_thread() -> None:
    failed = advance(OPENED, seen(Seen.SOURCE_FAILED), T0, POLICY).after

    step = advance(failed, seen(Seen.GAP, 12.5), T0 + timedelta(minutes=5), POLICY)

    assert (step.action, step.after.state) == (Action.UPDATE, "alerting")
    assert step.after.episode_uncovered_cost_usd == 12.5


@pytest.mark.parametrize(
    ("name", "floor"),
    [("nova-fast", 0.5), ("claude-large", 0.25), ("chickytutor", 0.5)],
    ids=["baseline-above-threshold", "baseline-below-threshold", "no-baseline"],
)
def test_coverage_floor_follows_the_catalog_baseline(name: str, floor: float) -> None:
    spec = Catalog().resolve(name)

    assert coverage_floor(spec, CoverageThresholds()) == pytest.approx(floor)


def test_observe_judges_the_last_interval_apart_from_the_window() -> None:
    """An hour whose gap ended 20 minutes ago: a gap in the window, not now."""
    opus = Catalog().resolve("opus")
    start = T0 - timedelta(hours=1)
    old_gap = [
        PeriodCoverage(start + timedelta(minutes=5 * i), 50, 10) for i in range(8)
    ]
    since = [
        PeriodCoverage(start + timedelta(minutes=40 + 5 * i), 10, 10) for i in range(4)
    ]
    model = ModelCoverage(
        model_id=opus.provider_model_ids[0],
        spec=opus,
        provider=Counts(440, 4_400_000, 44_000),
        gateway=Counts(120, 1_200_000, 12_000),
        verdict=Verdict.BELOW_BASELINE,
        series=old_gap + since,
    )

    now = observe(model, [], start, POLICY, now=T0)
    back_then = observe(model, [], start, POLICY, now=start + timedelta(minutes=40))

    assert (now.seen, now.recent) == (Seen.GAP, Seen.COVERED)
    assert now.rule == "cost > $5.00"
    assert not now.opens_episode and not now.gap_now
    assert (back_then.seen, back_then.recent) == (Seen.GAP, Seen.GAP)
    assert back_then.opens_episode


@pytest.mark.parametrize(
    ("interval", "now", "recent"),
    [
        (timedelta(minutes=1), T0 + timedelta(minutes=2, seconds=30), Seen.GAP),
        (timedelta(minutes=5), T0 + timedelta(minutes=2, seconds=30), Seen.GAP),
        (timedelta(minutes=5), T0 + timedelta(minutes=10), Seen.COVERED),
    ],
    ids=["interval-shorter-than-period", "clock-off-boundary", "on-boundary"],
)
def test_the_last_interval_is_the_periods_it_overlaps(
    interval: timedelta, now: datetime, recent: Seen
) -> None:
    """A 1-minute interval inside 5-minute periods still sees the current gap."""
    opus = Catalog().resolve("opus")
    start = T0 - timedelta(hours=1)
    covered = [
        PeriodCoverage(start + timedelta(minutes=5 * i), 10, 10) for i in range(12)
    ]
    # The bypass runs in the period from 12:00 only; 12:05 is clean again.
    series = [*covered, PeriodCoverage(T0, 50, 10)]
    if now >= T0 + timedelta(minutes=10):
        series.append(PeriodCoverage(T0 + timedelta(minutes=5), 10, 10))
    model = ModelCoverage(
        model_id=opus.provider_model_ids[0],
        spec=opus,
        provider=Counts(180, 1_800_000, 18_000),
        gateway=Counts(140, 1_400_000, 14_000),
        verdict=Verdict.OK,
        series=series,
    )
    policy = dataclasses.replace(POLICY, interval=interval)

    observed = observe(model, [], start, policy, now=now)

    assert observed.recent is recent


@pytest.mark.parametrize(
    ("name", "billed", "logged", "reason", "rule"),
    [
        (
            "claude-large",
            500,
            100,
            "invocation coverage 20.0% is below 25.0%",
            "coverage < 25.0%",
        ),
        (
            "chickytutor",
            500,
            200,
            "invocation coverage 40.0% is below 50.0%",
            "coverage < 50.0%",
        ),
        (
            "claude-large",
            500,
            200,
            "uncovered cost $22.50 is above $5.00",
            "cost > $5.00",
        ),
        ("chickytutor", 500, 400, "covered", None),
    ],
    ids=["under-baseline-floor", "under-threshold", "cost-above-limit", "covered"],
)
def test_observe_names_the_rule_a_gap_breaks(
    name: str, billed: int, logged: int, reason: str, rule: str | None
) -> None:
    """Coverage under the model's floor first, else the window's uncovered cost."""
    spec = Catalog().resolve(name)
    # 10,000 input and 1,000 output tokens a call: $0.075 a call for claude-large,
    # so 300 uncovered calls cost $22.50; 100 of chickytutor's cost $1.20.
    model = ModelCoverage(
        model_id=spec.provider_model_ids[0],
        spec=spec,
        provider=Counts(billed, billed * 10_000, billed * 1_000),
        gateway=Counts(logged, logged * 10_000, logged * 1_000),
        verdict=Verdict.OK,
    )

    observed = observe(model, [], T0 - timedelta(hours=1), POLICY)

    assert (observed.reason, observed.rule) == (reason, rule)
    assert observed.seen is (Seen.COVERED if rule is None else Seen.GAP)
