"""A real PostgreSQL server for the tests: one per session, in a temp dir, on 127.0.0.1.

Register with `pytest_plugins = ["tests.fixtures_pg"]`; every module shares the server.
"""

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

COMMAND_TIMEOUT_SECONDS = 60
_SEARCH = "initdb on PATH or /usr/lib/postgresql/*/bin"


def postgres_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is absent."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return installed[-1].parent if installed else None


@dataclass
class PostgresServer:
    """A running throwaway server and the ways to reach it."""

    bin_dir: Path
    base: Path
    port: int
    as_postgres: bool

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str) -> str:
        """A SQLAlchemy URL for `database` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        ) as connection:
            statement = sql.SQL("CREATE DATABASE {}")
            connection.execute(statement.format(sql.Identifier(name)))
        return self.url(name)

    def run(self, *args: str) -> None:
        """Run a PostgreSQL program, as the postgres user when we are root."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
        if completed.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:1])} failed ({completed.returncode}): "
                f"{completed.stderr.strip()}\n{tail}"
            )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"),
            "-o", options, "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_server(bin_dir: Path) -> PostgresServer:
    as_postgres = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="usage-bot-pg-"))
    if as_postgres:
        # initdb refuses to run as root; the server's files belong to postgres.
        account = pwd.getpwnam("postgres")
        os.chown(base, account.pw_uid, account.pw_gid)
    server = PostgresServer(bin_dir, base, 0, as_postgres)
    server.run(
        "initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres",
        "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
    )  # fmt: skip

    # Another process may take the probed port before the server binds it.
    for attempt in range(3):
        server.port = _free_port()
        try:
            server.start()
            return server
        except RuntimeError:
            if attempt == 2:
                shutil.rmtree(base, ignore_errors=True)
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server running for the whole test session."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(f"PostgreSQL server binaries not found ({_SEARCH})")
    server = _start_server(bin_dir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """A SQLAlchemy URL to one database shared by the session."""
    return postgres_server.create_database("usage_bot")


_database_numbers = itertools.count(1)


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> str:
    """A SQLAlchemy URL to a new, empty database for one test."""
    return postgres_server.create_database(f"test_{next(_database_numbers)}")
