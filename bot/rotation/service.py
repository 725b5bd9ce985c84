"""The rotation checklist: start, tick, check and close, with every action audited.

Concurrency: each action runs in one transaction that locks the rotation row (a
no-op on SQLite, whose writers queue instead), then updates the step only if its
version is still the one read. Slack may deliver one click twice; the audit log's
unique (request id, action) makes the second delivery a no-op.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.access import Admins
from bot.config import Settings
from bot.errors import BotError, InputError, NotAllowed
from bot.rotation.runbook import runbook_for
from bot.store.db import Store, affected_rows
from bot.store.models import AuditEntry, Rotation, RotationStep

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
R = TypeVar("R")


class RotationStatus(StrEnum):
    """Where a rotation is in its life."""

    OPEN = "open"
    DONE = "done"
    ABANDONED = "abandoned"


class StepState(StrEnum):
    """Where one step is."""

    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class StepAction(StrEnum):
    """What a person can do to a step."""

    DONE = "done"
    SKIP = "skip"
    UNDO = "undo"


class ActionOutcome(StrEnum):
    """What became of one request."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    DUPLICATE = "duplicate"


_TARGET_STATE = {
    StepAction.DONE: StepState.DONE,
    StepAction.SKIP: StepState.SKIPPED,
    StepAction.UNDO: StepState.PENDING,
}


@dataclass(frozen=True)
class StepView:
    """One step as a renderer needs it."""

    number: int
    title: str
    detail: str
    check: str | None
    state: StepState
    actor: str | None
    updated_at: datetime | None
    evidence: str | None
    version: int


@dataclass(frozen=True)
class RotationView:
    """One rotation as a renderer needs it."""

    id: int
    token_name: str
    channel: str
    message_ts: str | None
    started_by: str
    started_at: datetime
    status: RotationStatus
    closed_by: str | None
    closed_at: datetime | None
    steps: tuple[StepView, ...]
    version: int

    @property
    def title(self) -> str:
        """The checklist's heading."""
        return f"Rotate {self.token_name}"

    @property
    def finished(self) -> int:
        """How many steps are done or skipped."""
        finished = {StepState.DONE, StepState.SKIPPED}
        return sum(step.state in finished for step in self.steps)

    @property
    def total(self) -> int:
        """How many steps the checklist has."""
        return len(self.steps)

    @property
    def is_open(self) -> bool:
        """Whether the rotation still accepts changes."""
        return self.status is RotationStatus.OPEN

    def step(self, number: int) -> StepView:
        """Step `number`, counted from 1."""
        return self.steps[number - 1]


@dataclass(frozen=True)
class ActionResult:
    """What one request did, the checklist as it now stands, and a line to say so."""

    outcome: ActionOutcome
    view: RotationView
    message: str

    @property
    def changed(self) -> bool:
        """Whether this request changed the rotation."""
        return self.outcome is ActionOutcome.APPLIED


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Request:
    user: str
    request_id: str | None
    action: str
    at: datetime


class RotationService:
    """Token-rotation checklists kept in the store."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock = _utc_now,
        admins: Admins | None = None,
    ):
        self._store = store
        self._settings = settings
        self._clock = clock
        self._admins = admins or Admins(settings)

    async def start(
        self, token_name: str, channel: str, user: str, request_id: str | None
    ) -> RotationView:
        """Open a checklist for `token_name` from its runbook."""
        request = await self._authorised(
            user, request_id, "rotation.start", f"token:{token_name}"
        )
        steps = runbook_for(token_name, self._settings)

        def work(session: Session) -> RotationView | BotError:
            earlier = _find_audit(session, request)
            if earlier is not None:
                return _earlier_start(session, earlier)
            open_one = _open_rotation(session, token_name)
            if open_one is not None:
                _audit(session, request, f"token:{token_name}", "rejected")
                return InputError(
                    f"{token_name} already has open rotation #{open_one.id}, started"
                    f" by {open_one.started_by}; close it before starting another"
                )

            rotation = Rotation(
                token_name=token_name,
                channel=channel,
                started_by=user,
                started_at=request.at,
                status=RotationStatus.OPEN.value,
                version=1,
                steps=[
                    RotationStep(
                        number=number,
                        title=step.title,
                        detail=step.detail,
                        check_name=step.check,
                        state=StepState.PENDING.value,
                        version=1,
                    )
                    for number, step in enumerate(steps, start=1)
                ],
            )
            session.add(rotation)
            session.flush()
            _audit(
                session,
                request,
                f"rotation:{rotation.id}",
                "applied",
                {"token": token_name, "channel": channel},
            )
            return _view(rotation)

        try:
            result = await self._store.run(work)
        except IntegrityError:
            # A concurrent duplicate delivery or a concurrent start won the race.
            result = await self._store.run(
                lambda session: _lost_start(session, request, token_name)
            )
        _log(request, f"token:{token_name}", result)
        return _raise_or_return(result)

    async def attach_message(
        self, rotation_id: int, channel: str, message_ts: str
    ) -> RotationView:
        """Remember the Slack message that shows this checklist."""

        def work(session: Session) -> RotationView | BotError:
            rotation = _locked_rotation(session, rotation_id)
            if rotation is None:
                return _missing(rotation_id)
            rotation.channel = channel
            rotation.message_ts = message_ts
            rotation.version += 1
            session.flush()
            return _view(rotation)

        return _raise_or_return(await self._store.run(work))

    async def act(
        self,
        rotation_id: int,
        step: int,
        action: str,
        user: str,
        request_id: str | None,
        expected_version: int | None = None,
    ) -> ActionResult:
        """Mark step `step` done, skipped, or back to pending."""
        try:
            chosen = StepAction(action)
        except ValueError:
            choices = ", ".join(item.value for item in StepAction)
            raise InputError(
                f"action must be one of {choices} but got {action!r}"
            ) from None
        request = await self._authorised(
            user, request_id, f"step.{chosen.value}", f"rotation:{rotation_id}"
        )
        target = _TARGET_STATE[chosen]

        def change(row: RotationStep) -> tuple[StepState, str | None] | None:
            if row.state == target.value:
                return None
            evidence = None if chosen is StepAction.UNDO else row.evidence
            return target, evidence

        return await self._change_step(
            rotation_id, step, request, change, expected_version
        )

    async def record_check(
        self,
        rotation_id: int,
        step: int,
        passed: bool | None,
        evidence: str,
        user: str,
        request_id: str | None = None,
    ) -> ActionResult:
        """Store a check's evidence; a pass marks the step done, a fail failed.

        `passed` None means the check could not run: the evidence is kept and the
        step's state is left alone.
        """
        request = await self._authorised(
            user, request_id, "step.check", f"rotation:{rotation_id}"
        )

        def change(row: RotationStep) -> tuple[StepState, str | None]:
            if passed is None:
                return StepState(row.state), evidence
            return (StepState.DONE if passed else StepState.FAILED), evidence

        return await self._change_step(rotation_id, step, request, change, None)

    async def close(
        self,
        rotation_id: int,
        outcome: str,
        user: str,
        request_id: str | None = None,
    ) -> ActionResult:
        """Close a rotation as done (every step finished) or abandoned."""
        if outcome not in {RotationStatus.DONE, RotationStatus.ABANDONED}:
            raise InputError(f"outcome must be done or abandoned but got {outcome!r}")
        status = RotationStatus(outcome)
        request = await self._authorised(
            user, request_id, "rotation.close", f"rotation:{rotation_id}"
        )

        def work(session: Session) -> ActionResult | BotError:
            rotation, refusal = _open_for_change(session, rotation_id, request)
            if refusal is not None:
                return refusal
            assert rotation is not None
            view = _view(rotation)
            left = [s.number for s in view.steps if s.state not in _FINISHED]
            if status is RotationStatus.DONE and left:
                _audit(session, request, _target(rotation), "rejected", {"left": left})
                return InputError(
                    f"rotation #{rotation_id} has unfinished steps "
                    f"{', '.join(map(str, left))}; finish or skip them first, "
                    "or close it as abandoned"
                )

            rotation.status = status.value
            rotation.closed_by = request.user
            rotation.closed_at = request.at
            rotation.version += 1
            _audit(session, request, _target(rotation), "applied", {"status": outcome})
            session.flush()
            return ActionResult(
                ActionOutcome.APPLIED,
                _view(rotation),
                f"rotation #{rotation_id} closed as {outcome}",
            )

        return await self._run_action(rotation_id, request, work)

    async def list_open(self) -> list[RotationView]:
        """Every open rotation, oldest first."""

        def work(session: Session) -> list[RotationView]:
            query = (
                select(Rotation)
                .where(Rotation.status == RotationStatus.OPEN.value)
                .order_by(Rotation.id)
            )
            return [_view(rotation) for rotation in session.scalars(query)]

        return await self._store.run(work)

    async def recent(self, limit: int) -> list[RotationView]:
        """The latest `limit` rotations, open or closed, newest first."""

        def work(session: Session) -> list[RotationView]:
            query = select(Rotation).order_by(Rotation.id.desc()).limit(limit)
            return [_view(rotation) for rotation in session.scalars(query)]

        return await self._store.run(work)

    async def get(self, rotation_id: int) -> RotationView:
        """Rotation `rotation_id`, open or closed."""

        def work(session: Session) -> RotationView | BotError:
            rotation = session.get(Rotation, rotation_id)
            return _missing(rotation_id) if rotation is None else _view(rotation)

        return _raise_or_return(await self._store.run(work))

    async def _authorised(
        self, user: str, request_id: str | None, action: str, target: str
    ) -> _Request:
        request = _Request(user, request_id, action, self._clock())
        if await self._admins.allows(user):
            return request

        await self._store.audit(
            at=request.at,
            actor=user,
            action=action,
            target=target,
            outcome="denied",
            request_id=request_id,
        )
        raise NotAllowed(
            f"user {user} is not in BOT_ADMINS or ADMIN_USERGROUP; only bot admins "
            "may change token rotations"
        )

    async def _change_step(
        self,
        rotation_id: int,
        number: int,
        request: _Request,
        change: Callable[[RotationStep], tuple[StepState, str | None] | None],
        expected_version: int | None,
    ) -> ActionResult:
        def work(session: Session) -> ActionResult | BotError:
            rotation, refusal = _open_for_change(session, rotation_id, request)
            if refusal is not None:
                return refusal
            assert rotation is not None
            if not 1 <= number <= len(rotation.steps):
                _audit(
                    session, request, _target(rotation), "rejected", {"step": number}
                )
                return InputError(
                    f"step must be 1 to {len(rotation.steps)} but got {number}"
                )

            row = rotation.steps[number - 1]
            if expected_version is not None and expected_version != row.version:
                return _conflict(session, request, rotation, row, expected_version)
            decided = change(row)
            if decided is None:
                details = {"step": number, "state": row.state}
                _audit(session, request, _target(rotation), "unchanged", details)
                return ActionResult(
                    ActionOutcome.UNCHANGED,
                    _view(rotation),
                    f"step {number} is already {row.state} (by {row.actor})",
                )
            return _apply(session, request, rotation, row, *decided)

        return await self._run_action(rotation_id, request, work)

    async def _run_action(
        self,
        rotation_id: int,
        request: _Request,
        work: Callable[[Session], ActionResult | BotError],
    ) -> ActionResult:
        try:
            result = await self._store.run(work)
        except IntegrityError:
            # The same delivery was recorded by a concurrent transaction.
            view = await self.get(rotation_id)
            result = _duplicate(view, request)
        _log(request, f"rotation:{rotation_id}", result)
        return _raise_or_return(result)


_FINISHED = {StepState.DONE, StepState.SKIPPED}


def _open_for_change(
    session: Session, rotation_id: int, request: _Request
) -> tuple[Rotation | None, ActionResult | BotError | None]:
    rotation = _locked_rotation(session, rotation_id)
    if rotation is None:
        _audit(session, request, f"rotation:{rotation_id}", "rejected")
        return None, _missing(rotation_id)
    if _find_audit(session, request) is not None:
        return rotation, _duplicate(_view(rotation), request)
    if rotation.status != RotationStatus.OPEN.value:
        _audit(session, request, _target(rotation), "rejected")
        return rotation, InputError(
            f"rotation #{rotation_id} is {rotation.status}; "
            "a closed rotation is read-only"
        )
    return rotation, None


def _apply(
    session: Session,
    request: _Request,
    rotation: Rotation,
    row: RotationStep,
    state: StepState,
    evidence: str | None,
) -> ActionResult | BotError:
    before = row.state
    statement = (
        update(RotationStep)
        .where(RotationStep.rotation_id == rotation.id)
        .where(RotationStep.number == row.number)
        .where(RotationStep.version == row.version)
        .values(
            state=state.value,
            actor=request.user,
            updated_at=request.at,
            evidence=evidence,
            version=row.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if affected_rows(session.execute(statement)) != 1:
        return _conflict(session, request, rotation, row, row.version)
    session.execute(
        update(Rotation)
        .where(Rotation.id == rotation.id)
        .values(version=Rotation.version + 1)
        .execution_options(synchronize_session=False)
    )
    details = {"step": row.number, "from": before, "to": state.value}
    _audit(session, request, _target(rotation), "applied", details)

    session.flush()
    session.expire_all()
    return ActionResult(
        ActionOutcome.APPLIED,
        _view(rotation),
        f"step {row.number} is now {state.value}",
    )


def _conflict(
    session: Session,
    request: _Request,
    rotation: Rotation,
    row: RotationStep,
    expected_version: int,
) -> ActionResult:
    session.expire_all()
    current = _view(rotation).step(row.number)
    details = {"step": row.number, "expected": expected_version}
    _audit(session, request, _target(rotation), "conflict", details)
    return ActionResult(
        ActionOutcome.CONFLICT,
        _view(rotation),
        f"step {row.number} changed since you saw it (version {expected_version}, "
        f"now {current.version}: {current.state} by {current.actor})",
    )


def _duplicate(view: RotationView, request: _Request) -> ActionResult:
    return ActionResult(
        ActionOutcome.DUPLICATE,
        view,
        f"request {request.request_id} was already handled",
    )


def _earlier_start(session: Session, earlier: AuditEntry) -> RotationView | BotError:
    rotation_id = earlier.target.removeprefix("rotation:")
    rotation = (
        session.get(Rotation, int(rotation_id)) if rotation_id.isdigit() else None
    )
    if earlier.outcome != "applied" or rotation is None:
        return InputError(
            f"request {earlier.request_id} was already handled ({earlier.outcome})"
        )
    return _view(rotation)


def _lost_start(
    session: Session, request: _Request, token_name: str
) -> RotationView | BotError:
    earlier = _find_audit(session, request)
    if earlier is not None:
        return _earlier_start(session, earlier)
    return InputError(f"another rotation of {token_name} was started at the same time")


def _locked_rotation(session: Session, rotation_id: int) -> Rotation | None:
    query = select(Rotation).where(Rotation.id == rotation_id).with_for_update()
    return session.scalars(query).first()


def _open_rotation(session: Session, token_name: str) -> Rotation | None:
    query = (
        select(Rotation)
        .where(Rotation.token_name == token_name)
        .where(Rotation.status == RotationStatus.OPEN.value)
    )
    return session.scalars(query).first()


def _find_audit(session: Session, request: _Request) -> AuditEntry | None:
    if request.request_id is None:
        return None
    query = (
        select(AuditEntry)
        .where(AuditEntry.request_id == request.request_id)
        .where(AuditEntry.action == request.action)
    )
    return session.scalars(query).first()


def _audit(
    session: Session,
    request: _Request,
    target: str,
    outcome: str,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            at=request.at,
            actor=request.user,
            action=request.action,
            target=target,
            outcome=outcome,
            request_id=request.request_id,
            trigger="slack" if request.request_id else None,
            details=details or {},
        )
    )


def _target(rotation: Rotation) -> str:
    return f"rotation:{rotation.id}"


def _missing(rotation_id: int) -> InputError:
    return InputError(f"rotation #{rotation_id} does not exist")


def _log(request: _Request, target: str, result: object) -> None:
    if isinstance(result, ActionResult):
        outcome = result.outcome.value
    elif isinstance(result, RotationView):
        outcome = ActionOutcome.APPLIED.value
    else:
        outcome = type(result).__name__
    log.info(
        "rotation action=%s target=%s user=%s request=%s outcome=%s",
        request.action,
        target,
        request.user,
        request.request_id,
        outcome,
    )


def _raise_or_return(result: R | BotError) -> R:
    if isinstance(result, BotError):
        raise result
    return result


def _view(rotation: Rotation) -> RotationView:
    return RotationView(
        id=rotation.id,
        token_name=rotation.token_name,
        channel=rotation.channel,
        message_ts=rotation.message_ts,
        started_by=rotation.started_by,
        started_at=rotation.started_at,
        status=RotationStatus(rotation.status),
        closed_by=rotation.closed_by,
        closed_at=rotation.closed_at,
        steps=tuple(
            StepView(
                number=step.number,
                title=step.title,
                detail=step.detail,
                check=step.check_name,
                state=StepState(step.state),
                actor=step.actor,
                updated_at=step.updated_at,
                evidence=step.evidence,
                version=step.version,
            )
            for step in rotation.steps
        ),
        version=rotation.version,
    )
