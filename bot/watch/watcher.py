"""One evaluation of every model: coverage, state changes, messages, saved states."""

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.analysis.coverage import CoverageReport, ModelCoverage
from bot.commands.charts import coverage_png
from bot.commands.coverage import CoverageRequest, run_coverage
from bot.commands.ipcheck import IpcheckRequest, run_ipcheck
from bot.errors import ConfigError
from bot.render.blocks import Block
from bot.services import Services
from bot.store import AlertStateRecord, Store
from bot.watch import alerts
from bot.watch.alerts import Message, Suspects
from bot.watch.digest import digest_time, send_digest
from bot.watch.evaluate import (
    Action,
    Observation,
    Policy,
    Step,
    advance,
    changed,
    model_key,
    observe,
    quiet,
)
from bot.windows import Window, choose_period, resolve_window

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
LEASE_NAME = "watch"
SLACK_TIMEOUT_SECONDS = 10
MIN_LEASE = timedelta(minutes=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


def slack_client(token: str, api_url: str) -> AsyncWebClient:
    """A Web API client with the bot's timeout."""
    return AsyncWebClient(token=token, base_url=api_url, timeout=SLACK_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class Posted:
    """One message the watcher sent, for logs, the demo and the tests."""

    action: Action
    model: str
    channel: str
    ts: str
    thread_ts: str | None
    text: str
    at: datetime
    blocks: list[Block] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


class _LeaseLost(Exception):
    """Another process took the lease while this one was evaluating."""


@dataclass
class _Seen:
    observation: Observation
    model: ModelCoverage | None = None
    report: CoverageReport | None = None


class Watcher:
    """Evaluates coverage when it holds the lease, and says what changed, once."""

    def __init__(
        self,
        services: Services,
        slack: AsyncWebClient,
        *,
        clock: Clock = utc_now,
        holder: str | None = None,
    ) -> None:
        settings = services.settings
        if not settings.alert_channel:
            raise ConfigError(
                "ALERT_CHANNEL must name the channel for alerts; got none"
            )
        if settings.digest_at is not None:
            digest_time(settings.digest_at)  # a bad DIGEST_AT fails at start-up
        self.services = services
        self.slack = slack
        self.clock = clock
        self.channel = settings.alert_channel
        self.policy = Policy.from_settings(settings)
        self.holder = holder or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        # Long enough to survive one slow evaluation, short enough that another
        # process takes over within two intervals when this one dies without
        # giving it up; never under a minute, whatever a short interval says.
        self.lease_ttl = max(MIN_LEASE, timedelta(seconds=2 * settings.watch_interval))

    async def send_digest(self) -> str | None:
        """The daily digest, when DIGEST_AT has come and it is not yet posted."""
        return await send_digest(self.services, self.slack, self.channel, self.clock())

    async def evaluate(self) -> list[Posted] | None:
        """One evaluation; None when another process holds the lease."""
        started = time.monotonic()
        now = self.clock()
        store = await self.services.store()
        if not await store.acquire_lease(LEASE_NAME, self.holder, self.lease_ttl, now):
            log.info("watch skipped", extra={"holder": self.holder, "lease": "held"})
            return None

        window = resolve_window(self.services.settings.watch_window, now)
        states = await store.load_alert_states()
        seen = await self._observe(window, states)
        steps = {
            key: advance(
                states.get(key) or AlertStateRecord(model=key, updated_at=now),
                item.observation,
                now,
                self.policy,
            )
            for key, item in seen.items()
        }
        posted: list[Posted] = []
        try:
            posted += await self._announce_no_data(steps, store, now)
            posted += await self._announce_data_back(steps, store, now)
            for key, step in steps.items():
                if _in_channel(step):
                    continue
                posted += await self._act(step, seen[key], window, store, now)
        except _LeaseLost:
            # What is left unsaid is said by the lease's new holder.
            log.warning("watch lease lost", extra={"holder": self.holder})

        log.info(
            "watch evaluated",
            extra={
                "holder": self.holder,
                "models": len(seen),
                "posted": [f"{p.action.value}:{p.model}" for p in posted],
                "ms": round((time.monotonic() - started) * 1000),
            },
        )
        return posted

    async def close(self) -> None:
        """Give the lease up so that another process can evaluate at once."""
        store = await self.services.store()
        await store.release_lease(LEASE_NAME, self.holder)

    async def _observe(
        self, window: Window, states: dict[str, AlertStateRecord]
    ) -> dict[str, _Seen]:
        requests = [
            CoverageRequest(None, window, provider)
            for provider in self.services.providers
        ]
        reports = await asyncio.gather(
            *(run_coverage(request, self.services) for request in requests)
        )
        seen: dict[str, _Seen] = {}
        for report in reports:
            for model in report.models:
                observation = observe(
                    model, report.errors, window.start, self.policy, window.end
                )
                seen[model_key(model)] = _Seen(observation, model, report)
        for key in states:
            seen.setdefault(key, _Seen(quiet(key, window.start)))
        return seen

    async def _announce_no_data(
        self, steps: dict[str, Step], store: Store, now: datetime
    ) -> list[Posted]:
        """Models that lose their data outside an episode share one message."""
        fresh = {
            key: step
            for key, step in steps.items()
            if step.action is Action.NO_DATA and _in_channel(step)
        }
        entries = [(key, step.after.reason or "") for key, step in fresh.items()]
        message = alerts.no_data_message(entries)
        return await self._announce(Action.NO_DATA, fresh, message, store, now)

    async def _announce_data_back(
        self, steps: dict[str, Step], store: Store, now: datetime
    ) -> list[Posted]:
        """Models whose no-data spell ends outside an episode also share one."""
        back = {k: s for k, s in steps.items() if s.action is Action.DATA_BACK}
        message = alerts.data_back_message(list(back))
        return await self._announce(Action.DATA_BACK, back, message, store, now)

    async def _announce(
        self,
        action: Action,
        steps: dict[str, Step],
        message: Message,
        store: Store,
        now: datetime,
    ) -> list[Posted]:
        if not steps:
            return []
        try:
            posted = await self._post(action, ", ".join(steps), message, now)
        except (SlackApiError, SlackClientError) as exc:
            # Unsaved, the change is announced at the next evaluation.
            log.warning("watch post failed", extra={"error": str(exc)})
            return []
        for step in steps.values():
            await self._save(store, step.after)
        return [posted]

    async def _act(
        self, step: Step, item: _Seen, window: Window, store: Store, now: datetime
    ) -> list[Posted]:
        after = step.after
        posted: list[Posted] = []
        try:
            if step.action is Action.ALERT:
                posted, after = await self._alert(step, item, window, now)
            elif step.action in (Action.UPDATE, Action.RECOVERY):
                posted, after = await self._follow_up(step, item, window, now)
            elif step.action is Action.NO_DATA:
                message = alerts.no_data_message([(after.model, after.reason or "")])
                posted = [await self._reply(step.before, step.action, message, now)]
        except (SlackApiError, SlackClientError) as exc:
            # Unsaved, the change is tried again at the next evaluation.
            log.warning(
                "watch post failed", extra={"model": after.model, "error": str(exc)}
            )
            return []
        if posted or changed(step):
            await self._save(store, after)
        return posted

    async def _alert(
        self, step: Step, item: _Seen, window: Window, now: datetime
    ) -> tuple[list[Posted], AlertStateRecord]:
        assert item.model is not None and item.report is not None
        key = step.after.model
        suspects = await self._suspects(window)
        message = alerts.alert_message(
            item.model, key, window, step.after.reason or "", suspects, self._tz
        )
        posted = await self._post(Action.ALERT, key, message, now)
        after = replace(step.after, channel=posted.channel, message_ts=posted.ts)

        rule = item.observation.rule
        png = await coverage_png(
            item.report, item.model, self._tz, f"Alert: {rule}" if rule else None
        )
        filename = f"coverage-{key}.png"
        try:
            await self.slack.files_upload_v2(
                channel=posted.channel,
                thread_ts=posted.ts,
                file=png,
                filename=filename,
                title=f"{key}: provider against gateway, last {window.label}",
            )
        except (SlackApiError, SlackClientError) as exc:
            log.warning("watch plot failed", extra={"model": key, "error": str(exc)})
            return [posted], after
        return [replace(posted, files=[filename])], after

    async def _follow_up(
        self, step: Step, item: _Seen, window: Window, now: datetime
    ) -> tuple[list[Posted], AlertStateRecord]:
        before, key = step.before, step.after.model
        cost = await self._episode_cost(item, before.gap_began_at, now)
        if cost is None:
            cost = step.after.episode_uncovered_cost_usd
        after = replace(step.after, episode_uncovered_cost_usd=cost)
        if step.action is Action.RECOVERY:
            message = alerts.recovery_message(
                key, before.gap_began_at, now, cost, self._tz
            )
        else:
            message = alerts.update_message(
                key, item.model, window, step.after.reason or "", cost
            )
        return [await self._reply(before, step.action, message, now)], after

    async def _episode_cost(
        self, item: _Seen, began: datetime | None, now: datetime
    ) -> float | None:
        """Uncovered cost from the gap's first period until now, asked afresh."""
        spec = item.model.spec if item.model else None
        if spec is None or began is None or began >= now:
            return None
        span = now - began
        period = choose_period(span, span)
        epoch = int(began.timestamp())
        start = datetime.fromtimestamp(epoch - epoch % period, UTC)
        label = f"{max(1, round(span.total_seconds() / 60))}m"
        episode = Window(start=start, end=now, period=period, label=label)
        report = await run_coverage(
            CoverageRequest(spec, episode, spec.provider), self.services
        )
        costs = [m.uncovered_cost_usd for m in report.models if m.spec == spec]
        known = [cost for cost in costs if cost is not None]
        return round(sum(known), 2) if known and not report.errors else None

    async def _suspects(self, window: Window) -> Suspects:
        if not self.services.settings.journal_hosts:
            return Suspects(error="JOURNAL_HOSTS is not set")
        report = await run_ipcheck(IpcheckRequest(None, window), self.services)
        if report.errors and not report.ips:
            return Suspects(error="; ".join(e.message for e in report.errors))
        return Suspects(ips=report.outside)

    async def _post(
        self,
        action: Action,
        model: str,
        message: Message,
        now: datetime,
        channel: str | None = None,
        thread_ts: str | None = None,
    ) -> Posted:
        text, blocks = message
        await self._still_leading()
        answer = await self.slack.chat_postMessage(
            channel=channel or self.channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
        )
        return Posted(
            action=action,
            model=model,
            channel=str(answer["channel"]),
            ts=str(answer["ts"]),
            thread_ts=thread_ts,
            text=text,
            at=now,
            blocks=blocks,
        )

    async def _still_leading(self) -> None:
        """Renew the lease just before a post, so that two processes never both
        speak: the evaluation may have outlasted the lease (a stalled source)."""
        store = await self.services.store()
        if not await store.renew_lease(
            LEASE_NAME, self.holder, self.lease_ttl, self.clock()
        ):
            raise _LeaseLost(self.holder)

    async def _reply(
        self, record: AlertStateRecord, action: Action, message: Message, now: datetime
    ) -> Posted:
        """In the alert's thread; in the channel if the alert was never posted."""
        return await self._post(
            action, record.model, message, now, record.channel, record.message_ts
        )

    async def _save(self, store: Store, record: AlertStateRecord) -> None:
        if await store.save_alert_state(record) is None:
            log.warning(
                "watch state changed elsewhere; not saved",
                extra={"model": record.model},
            )

    @property
    def _tz(self) -> str:
        return self.services.settings.timezone


def _in_channel(step: Step) -> bool:
    """Announced in the channel with other models, not in an alert's thread."""
    if step.action is Action.DATA_BACK:
        return True
    return step.action is Action.NO_DATA and step.before.message_ts is None
