"""The bot's tables: rotations and their steps, the audit log, alert states, leases."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in as aware UTC and always comes back aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp must be timezone-aware but got {value!r}")
        value = value.astimezone(UTC)
        # SQLite keeps text without an offset, so every value there is UTC.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base that owns the bot's metadata."""


class Rotation(Base):
    """One run of a token-rotation checklist."""

    __tablename__ = "rotations"
    __table_args__ = (
        # At most one open rotation per token, enforced by the database itself.
        Index(
            "one_open_rotation_per_token",
            "token_name",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_name: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(100))
    message_ts: Mapped[str | None] = mapped_column(String(50))
    started_by: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20), default="open")
    closed_by: Mapped[str | None] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)

    steps: Mapped[list["RotationStep"]] = relationship(
        order_by="RotationStep.number", cascade="all, delete-orphan"
    )


class RotationStep(Base):
    """One step of a rotation, with who last changed it and the evidence seen."""

    __tablename__ = "rotation_steps"

    rotation_id: Mapped[int] = mapped_column(
        ForeignKey("rotations.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="")
    check_name: Mapped[str | None] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(20), default="pending")
    actor: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    evidence: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)


class AuditEntry(Base):
    """One line of the audit log: who did what to what, when, and how it ended."""

    __tablename__ = "audit_log"
    __table_args__ = (
        # One delivery of one Slack request is recorded (and acted on) once.
        UniqueConstraint("request_id", "action", name="one_audit_per_delivery"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(200), index=True)
    outcome: Mapped[str] = mapped_column(String(50))
    request_id: Mapped[str | None] = mapped_column(String(200))
    trigger: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AlertState(Base):
    """The watcher's memory of one model: whether it is alerting and since when."""

    __tablename__ = "alert_states"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), default="ok")
    reason: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(100))
    message_ts: Mapped[str | None] = mapped_column(String(50))
    episode_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    gap_began_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    episode_uncovered_cost_usd: Mapped[float] = mapped_column(default=0.0)
    ok_streak: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Lease(Base):
    """A named, expiring claim that one process holds at a time."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
