"""Optuna storages: an RDB URL (SQLite, PostgreSQL, ...) with heartbeats, or a journal file.

Every storage error a user can cause (bad URL, missing folder, unreachable server) is a one-line
:class:`~codesign.errors.UserError`, raised before anything is created. SQLite transactions take
the database's write lock when they begin (:func:`serialise_sqlite_transactions`) and commit to a
write-ahead log (:func:`_write_ahead_log`).
"""

from __future__ import annotations

import atexit
import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from codesign.errors import UserError
from codesign.search.heartbeat import MAX_RETRY, heartbeat_settings

JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
#: How long a SQLite transaction waits for another worker's to finish before it gives up.
SQLITE_BUSY_TIMEOUT_S = 60.0


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` means psycopg (v3) to SQLAlchemy 2.1; use psycopg2 when that is what is installed."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{run_dir / 'study.db'}"


#: attempts more to open a new RDB storage that another command is creating at the same moment
SCHEMA_RACE_RETRIES = 5


def _schema_race(exc: Exception) -> bool:
    """Did two commands create one storage's tables at once (Optuna's schema set-up is not
    atomic: the loser sees the winner's alembic version row or tables)?"""
    text = str(exc)
    return "UNIQUE constraint failed: alembic_version" in text or "already exists" in text


def open_storage(url: str) -> BaseStorage:
    """An RDB URL (sqlite://, postgresql://, ...) with heartbeats, or a journal file path.

    Nothing is created for a bad URL; an unreachable server is a :class:`UserError`.
    """
    heartbeat, grace = heartbeat_settings()
    if "://" not in url:
        path = Path(url)
        if path.suffix not in JOURNAL_SUFFIXES:
            raise UserError(
                f"storage '{url}': give an RDB URL (sqlite:///path.db, postgresql://...) "
                "or a journal file (*.log)"
            )
        if not path.parent.is_dir():
            raise UserError(f"storage '{url}': folder {path.parent} does not exist")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise UserError(f"storage '{url}': journal file is not readable and writable")
        # A worker killed while appending leaves the lock file behind: others break it after the
        # same grace period as a silent trial (Optuna's default is 30 s).
        lock = JournalFileSymlinkLock(str(path), grace_period=max(grace, 3))  # < 3 s: Optuna warns
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    engine_kwargs: dict[str, Any] | None = None
    sqlite = url.startswith("sqlite")
    if sqlite:
        db = url.split("///", 1)[1] if "///" in url else ""
        if db and db != ":memory:" and not Path(db).parent.is_dir():
            raise UserError(f"storage '{url}': folder {Path(db).parent} does not exist")
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        # No pool_pre_ping: it doubles the round trips of every storage call (a trial makes ~40);
        # connections are recycled instead, and a worker that loses its server can be restarted.
        engine_kwargs = {"pool_recycle": 1800}
        if url.startswith(("postgresql", "postgres")):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
    for attempt in range(SCHEMA_RACE_RETRIES + 1):
        try:
            storage = RDBStorage(
                sqlalchemy_url(url),
                heartbeat_interval=heartbeat,
                grace_period=grace,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
                engine_kwargs=engine_kwargs,
            )
            break
        except Exception as exc:  # sqlalchemy raises many kinds for a bad URL / unreachable server
            if attempt < SCHEMA_RACE_RETRIES and _schema_race(exc):
                time.sleep(0.2 * (attempt + 1))  # another command created the tables meanwhile
                continue
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"storage '{_redact(url)}' unreachable: {detail[:160]}") from exc
    if sqlite:
        serialise_sqlite_transactions(storage.engine)
    return storage


def serialise_sqlite_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Make every SQLite transaction of ``engine`` take the database's write lock when it begins.

    SQLite ignores ``SELECT ... FOR UPDATE`` and Python's driver begins a transaction only at the
    first write, so two worker processes can both read a queued (WAITING) trial, both mark it
    RUNNING and both run it; the second then fails with "Cannot tell a COMPLETE trial" (Optuna's
    read-check-write of the trial state is atomic on PostgreSQL, not here). ``BEGIN IMMEDIATE``
    (SQLAlchemy's recipe for pysqlite) makes each read-check-write one serialised transaction.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _driver_leaves_transactions_to_sqlalchemy(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        _write_ahead_log(dbapi_connection)

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection: sqlalchemy.engine.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners (schema check) are not reused
    _SQLITE_ENGINES.append(engine)


#: the SQLite engines this process opened (:func:`close_sqlite_storages` closes their connections)
_SQLITE_ENGINES: list[sqlalchemy.engine.Engine] = []


@atexit.register
def close_sqlite_storages() -> None:
    """Close the pooled connections of every SQLite storage this process opened: the last
    connection to a database to close folds its write-ahead log back into the file and deletes
    ``study.db-wal`` (a command that ends with ``os._exit`` calls this first)."""
    while _SQLITE_ENGINES:
        _SQLITE_ENGINES.pop().dispose()


def _write_ahead_log(dbapi_connection: Any) -> None:
    """SQLite in write-ahead-log mode, synced at checkpoints rather than at every commit.

    A trial commits about 30 times (one per parameter Optuna suggests, then its values and
    attributes); in the default rollback-journal mode each commit waits for fsyncs: the default
    search's 200 trials took 53 s on a 2-core VM, 24 s in WAL mode (same Pareto front). In WAL
    mode with ``synchronous=NORMAL`` a commit is an append to ``study.db-wal``:
    a process that is killed loses nothing (the next one to open the database replays the log),
    a power cut may lose the last trials but leaves the database consistent (SQLite's
    documented guarantee). WAL needs the processes on one machine (shared memory): a study on a
    network file system belongs in PostgreSQL or a journal file (``--storage``).
    """
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
