"""The store on SQLite and real PostgreSQL: tables, audit, alert states, leases."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from bot.errors import ConfigError
from bot.store import AlertStateRecord, Store, make_engine

NOW = datetime(2026, 12, 3, 21, 30, tzinfo=UTC)
TTL = timedelta(seconds=60)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    yield opened
    await opened.close()


async def test_open_creates_every_table(store: Store) -> None:
    """Opening a store creates the five tables."""
    names = await asyncio.to_thread(lambda: inspect(store.engine).get_table_names())

    assert sorted(names) == [
        "alert_states",
        "audit_log",
        "leases",
        "rotation_steps",
        "rotations",
    ]


async def test_audit_keeps_one_line_per_delivery(store: Store) -> None:
    """The same request id and action is recorded once; timestamps come back UTC."""
    line = {
        "at": NOW,
        "actor": "U1",
        "action": "step.done",
        "target": "rotation:1",
        "outcome": "applied",
        "request_id": "req-1",
        "details": {"step": 3},
    }

    first = await store.audit(**line)
    second = await store.audit(**line)

    entries = await store.audit_entries()
    assert (first, second) == (True, False)
    assert [(e.actor, e.action, e.at, e.details) for e in entries] == [
        ("U1", "step.done", NOW, {"step": 3})
    ]


async def test_alert_state_refuses_a_stale_write(store: Store) -> None:
    """A write based on an old version is refused; the newer one stays."""
    fresh = AlertStateRecord(model="claude", updated_at=NOW, state="alerting")
    saved = await store.save_alert_state(fresh)
    assert saved is not None

    newer = await store.save_alert_state(dataclasses.replace(saved, ok_streak=1))
    stale = await store.save_alert_state(dataclasses.replace(saved, state="ok"))
    again = await store.save_alert_state(fresh)

    states = await store.load_alert_states()
    assert (stale, again) == (None, None)
    assert newer is not None and newer.version == 2
    assert states == {"claude": newer}


async def test_lease_is_held_by_one_holder(store: Store) -> None:
    """A second holder cannot take a live lease; the first can renew and release it."""
    first = await store.acquire_lease("watch", "a", TTL, NOW)
    second = await store.acquire_lease("watch", "b", TTL, NOW + timedelta(seconds=30))
    renewed = await store.renew_lease("watch", "a", TTL, NOW + timedelta(seconds=30))
    wrong_release = await store.release_lease("watch", "b")
    released = await store.release_lease("watch", "a")
    after = await store.acquire_lease("watch", "b", TTL, NOW + timedelta(seconds=31))

    assert (first, second, renewed, wrong_release, released, after) == (
        True,
        False,
        True,
        False,
        True,
        True,
    )


async def test_expired_lease_is_taken_over(store: Store) -> None:
    """Once a lease lapses another holder takes it and the old one cannot renew."""
    await store.acquire_lease("watch", "a", TTL, NOW)
    later = NOW + TTL

    taken = await store.acquire_lease("watch", "b", TTL, later)
    renewed = await store.renew_lease("watch", "a", TTL, later)
    held = await store.acquire_lease("watch", "a", TTL, later)

    assert (taken, renewed, held) == (True, False, False)


async def test_concurrent_acquires_let_exactly_one_win(database_url: str) -> None:
    """Eight processes racing for one lease over separate connections: one wins."""
    stores = [await Store.open(database_url) for _ in range(8)]
    try:
        results = await asyncio.gather(
            *(
                store.acquire_lease("watch", f"holder-{index}", TTL, NOW)
                for index, store in enumerate(stores)
            )
        )
    finally:
        for store in stores:
            await store.close()

    assert sorted(results) == [False] * 7 + [True]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "DATABASE_URL must be a database URL but got 'nonsense'"),
        (
            "mysql://db/bot",
            "DATABASE_URL must be sqlite:/// or postgresql:// but got mysql",
        ),
    ],
    ids=["not-a-url", "unsupported"],
)
def test_make_engine_names_a_bad_url(url: str, message: str) -> None:
    """A URL the store cannot use is a ConfigError that says why."""
    with pytest.raises(ConfigError) as caught:
        make_engine(url)

    assert str(caught.value) == message


def test_make_engine_accepts_plain_postgresql_urls() -> None:
    """`postgresql://` and `postgres://` use psycopg 3."""
    engines = [
        make_engine(f"{scheme}://u@127.0.0.1/db")
        for scheme in ("postgres", "postgresql")
    ]

    assert [engine.url.drivername for engine in engines] == ["postgresql+psycopg"] * 2


async def test_in_memory_database_is_shared_by_every_thread() -> None:
    """`sqlite://` keeps one database across worker threads and concurrent calls."""
    store = await Store.open("sqlite://")

    results = await asyncio.gather(
        *(store.acquire_lease("watch", f"h{index}", TTL, NOW) for index in range(6))
    )
    holders = await asyncio.gather(
        *(store.renew_lease("watch", f"h{index}", TTL, NOW) for index in range(6))
    )
    await store.close()

    assert sorted(results) == [False] * 5 + [True]
    assert results == holders


async def test_processes_starting_together_create_the_tables_once(
    fresh_postgres_url: str,
) -> None:
    """Two bots opening one new PostgreSQL database at once both get a store."""
    stores = await asyncio.gather(*(Store.open(fresh_postgres_url) for _ in range(4)))

    for store in stores:
        assert await store.audit_entries() == []
        await store.close()
