"""Opening the store's database: engine creation, connection settings, migrations, sessions.

SQLite (WAL, foreign keys on) in GPTSTORE_HOME by default; any SQLAlchemy URL through
DATABASE_URL. The schema is created and upgraded only through the Alembic migrations in
storage/migrations, so upgrading the program never loses a user's store.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlmodel import Session, create_engine

from storage.errors import DatabaseError
from storage.urls import mask_url

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """One SQLAlchemy engine plus the few helpers every other storage module needs."""

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = url
        self.schema = schema  # PostgreSQL only: the tests give each run its own schema
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise DatabaseError(
                f"DATABASE_URL is not a database URL ({_redact(url)}); "
                "use e.g. postgresql+psycopg://user@host/db or sqlite:///path/store.db."
            ) from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs: dict = {"echo": echo, "pool_pre_ping": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        elif schema:
            kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except Exception as exc:  # missing driver, bad options
            raise DatabaseError(
                f"Cannot use DATABASE_URL {_redact(url)}: {exc}. Check the URL and its driver."
            ) from exc
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def migrate(self) -> None:
        """Bring the schema to the newest revision (creates it on a new store)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                if self.schema:
                    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except (OperationalError, DBAPIError) as exc:
            raise DatabaseError(
                f"Cannot open the database at {_redact(self.url)} ({_first_line(exc)}). "
                "Check that the server is running and DATABASE_URL is right, "
                "or that the file is a gptstore database."
            ) from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def retrying(self, work: Callable[[Session], T], attempts: int = 3, delay: float = 0.2) -> T:
        """Run `work` in a fresh session, retrying when the connection dropped."""
        for attempt in range(1, attempts + 1):
            try:
                with self.session() as session:
                    return work(session)
            except OperationalError as exc:
                if attempt == attempts or not _is_disconnect(exc):
                    raise
                self.engine.dispose()
                time.sleep(delay * attempt)
        raise AssertionError("unreachable")

    def compact(self) -> int | None:
        """Give the space of deleted rows back, and leave no copy of them in the file.

        SQLite: checkpoint and truncate the write-ahead log, then VACUUM (a full rebuild of
        the file; it waits up to the busy timeout for other connections), and truncate the
        log again. Returns the bytes freed, or None where nothing was done: PostgreSQL
        (autovacuum reclaims the space by itself) or a store too busy to rebuild now."""
        if not self.is_sqlite:
            return None
        path = make_url(self.url).database
        before = _size(path)
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                c.exec_driver_sql("VACUUM")
                c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except OperationalError:
            return None
        return max(0, before - _size(path))
    def ping(self) -> None:
        """Raises when the database does not answer (the health check)."""
        with self.engine.connect() as connection:
            connection.execute(text("select 1"))

    def close(self) -> None:
        self.engine.dispose()


def _size(path: str | None) -> int:
    """Bytes of a SQLite store: its file and its write-ahead log."""
    if not path or path == ":memory:":
        return 0
    return sum(Path(p).stat().st_size for p in (path, f"{path}-wal") if Path(p).exists())


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _is_disconnect(exc: OperationalError) -> bool:
    return bool(getattr(exc, "connection_invalidated", False)) or "closed" in str(exc).lower() \
        or "terminat" in str(exc).lower() or "connection" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return mask_url(url) or ""
