"""The database: engine from DATABASE_URL, transactions off the event loop, leases."""

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from bot.errors import ConfigError, echo
from bot.store.models import AlertState, AuditEntry, Base, Lease

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 10


def make_engine(url: str) -> Engine:
    """An engine for a `sqlite:///file` or PostgreSQL URL, tuned for the bot's use."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"DATABASE_URL must be a database URL but got {echo(url)}"
        ) from exc

    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
    if backend == "sqlite":
        # An in-memory database lives in one connection, so every thread shares it.
        pool: dict[str, Any] = {"poolclass": StaticPool} if is_in_memory(parsed) else {}
        engine = create_engine(
            parsed,
            connect_args={
                "timeout": CONNECT_TIMEOUT_SECONDS,
                "check_same_thread": False,
            },
            **pool,
        )
        _serialise_sqlite_writers(engine)
        return engine
    raise ConfigError(
        f"DATABASE_URL must be sqlite:/// or postgresql:// but got {parsed.drivername}"
    )


def is_in_memory(engine_url: URL) -> bool:
    """Whether `engine_url` names an in-memory SQLite database."""
    memory = {None, "", ":memory:"}
    return engine_url.get_backend_name() == "sqlite" and engine_url.database in memory


def _serialise_sqlite_writers(engine: Engine) -> None:
    # pysqlite opens transactions lazily and as readers; two readers that both try to
    # write can fail at once instead of waiting. BEGIN IMMEDIATE takes the write lock
    # up front, so transactions queue on the busy timeout instead.
    @event.listens_for(engine, "connect")
    def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass(frozen=True)
class AuditRecord:
    """One audit-log line as plain data."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    request_id: str | None
    trigger: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class AlertStateRecord:
    """The watcher's stored view of one model; `version` 0 means never saved."""

    model: str
    updated_at: datetime
    state: str = "ok"
    reason: str | None = None
    channel: str | None = None
    message_ts: str | None = None
    episode_started_at: datetime | None = None
    gap_began_at: datetime | None = None
    last_notified_at: datetime | None = None
    episode_uncovered_cost_usd: float = 0.0
    ok_streak: int = 0
    version: int = 0


_ALERT_FIELDS = [f.name for f in dataclasses.fields(AlertStateRecord)]


# Any constant will do; it names the lock that serialises table creation.
_SCHEMA_LOCK = 0x75736167  # "usag"


def create_tables(engine: Engine) -> None:
    """Create missing tables; on PostgreSQL one process at a time.

    Two bot processes starting together would otherwise both try to create the
    same types and fail on PostgreSQL's catalog constraints.
    """
    if engine.dialect.name != "postgresql":
        Base.metadata.create_all(engine)
        return
    with engine.begin() as connection:
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK}
        )
        Base.metadata.create_all(connection)


class Store:
    """The bot's database: every call runs one transaction in a worker thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # The one shared connection of an in-memory database takes one
        # transaction at a time.
        self._one_at_a_time = threading.Lock() if is_in_memory(engine.url) else None

    @classmethod
    async def open(cls, url: str) -> "Store":
        """Connect to `url` and create any missing tables."""
        engine = make_engine(url)
        await asyncio.to_thread(create_tables, engine)
        return cls(engine)

    async def close(self) -> None:
        """Close every pooled connection."""
        await asyncio.to_thread(self.engine.dispose)

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction, committed if it returns, off the loop."""
        return await asyncio.to_thread(self._transaction, work)

    def _transaction(self, work: Callable[[Session], T]) -> T:
        with self._turn(), self._sessions() as session, session.begin():
            return work(session)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        with self._one_at_a_time or nullcontext():
            yield

    async def acquire_lease(
        self, name: str, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Take or extend lease `name` for `holder` unless someone else holds it."""

        def work(session: Session) -> bool:
            insert = (
                postgresql.insert(Lease)
                if session.get_bind().dialect.name == "postgresql"
                else sqlite.insert(Lease)
            )
            values = insert.values(name=name, holder=holder, expires_at=now + ttl)
            statement = values.on_conflict_do_update(
                index_elements=[Lease.name],
                set_={"holder": holder, "expires_at": now + ttl},
                where=(Lease.holder == holder) | (Lease.expires_at <= now),
            ).returning(Lease.holder)
            return session.execute(statement).first() is not None

        acquired = await self.run(work)
        log.debug("lease %s holder=%s acquired=%s", name, holder, acquired)
        return acquired

    async def renew_lease(
        self, name: str, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Extend lease `name` if `holder` still holds it and it has not lapsed."""

        def work(session: Session) -> bool:
            statement = (
                update(Lease)
                .where(Lease.name == name)
                .where(Lease.holder == holder)
                .where(Lease.expires_at > now)
                .values(expires_at=now + ttl)
            )
            return affected_rows(session.execute(statement)) == 1

        return await self.run(work)

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give lease `name` up if `holder` holds it."""

        def work(session: Session) -> bool:
            statement = (
                delete(Lease).where(Lease.name == name).where(Lease.holder == holder)
            )
            return affected_rows(session.execute(statement)) == 1

        return await self.run(work)

    async def audit(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        request_id: str | None = None,
        trigger: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Add one audit line; False when this request was already recorded."""

        def work(session: Session) -> None:
            session.add(
                AuditEntry(
                    at=at,
                    actor=actor,
                    action=action,
                    target=target,
                    outcome=outcome,
                    request_id=request_id,
                    trigger=trigger,
                    details=details or {},
                )
            )

        try:
            await self.run(work)
        except IntegrityError:
            return False
        return True

    async def audit_entries(
        self, target: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """The most recent audit lines, oldest first, optionally for one target."""

        def work(session: Session) -> list[AuditRecord]:
            query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            if target is not None:
                query = query.where(AuditEntry.target == target)
            rows = session.scalars(query).all()
            return [audit_record(row) for row in reversed(rows)]

        return await self.run(work)

    async def load_alert_states(self) -> dict[str, AlertStateRecord]:
        """Every model's stored alert state, by model name."""

        def work(session: Session) -> dict[str, AlertStateRecord]:
            rows = session.scalars(select(AlertState)).all()
            return {row.model: _alert_record(row) for row in rows}

        return await self.run(work)

    async def save_alert_state(
        self, record: AlertStateRecord
    ) -> AlertStateRecord | None:
        """Write `record` if nobody wrote since it was read; None if someone did."""
        values = {name: getattr(record, name) for name in _ALERT_FIELDS}
        values["version"] = record.version + 1

        def work(session: Session) -> bool:
            if record.version == 0:
                session.add(AlertState(**values))
                session.flush()
                return True
            statement = (
                update(AlertState)
                .where(AlertState.model == record.model)
                .where(AlertState.version == record.version)
                .values(**values)
            )
            return affected_rows(session.execute(statement)) == 1

        try:
            written = await self.run(work)
        except IntegrityError:
            written = False
        return (
            dataclasses.replace(record, version=record.version + 1) if written else None
        )


def audit_record(row: AuditEntry) -> AuditRecord:
    """Plain data for one audit row."""
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        request_id=row.request_id,
        trigger=row.trigger,
        details=dict(row.details),
    )


def _alert_record(row: AlertState) -> AlertStateRecord:
    return AlertStateRecord(**{name: getattr(row, name) for name in _ALERT_FIELDS})


def affected_rows(result: Any) -> int:
    """How many rows an UPDATE or DELETE touched."""
    # DML results carry a rowcount; the ORM's Result type does not declare it.
    return int(result.rowcount)
