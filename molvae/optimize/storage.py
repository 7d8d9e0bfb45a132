"""Where a study lives: one SQLAlchemy URL holds both the optuna study and the oracle's call log.

A SQLite file in the run directory is the default; a PostgreSQL (or MySQL) URL lets workers on
several machines share one study. Every URL is checked up front so a typo is one line, not a
traceback from deep inside optuna.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from molvae.errors import MolVAEError

__all__ = ["StorageError", "check_url", "make_engine", "optuna_storage", "default_url", "redact"]


class StorageError(MolVAEError, ValueError):
    """A storage URL cannot be used (bad syntax, unknown driver, unreachable server, existing study)."""


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def check_url(url: str) -> Any:
    """Parse ``url`` and check its driver is installed; return the SQLAlchemy ``URL``.

    :raises StorageError: naming the URL (password hidden) and what is wrong with it.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if not isinstance(url, str) or not url.strip():
        raise StorageError("empty storage URL; expected e.g. sqlite:///run/study.db or postgresql://user@host/db")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"bad storage URL {url!r}: expected DIALECT://... such as sqlite:///run/study.db "
            "or postgresql://user@host:5432/db"
        ) from None
    if parsed.drivername == "postgresql":  # pick the driver that is installed (psycopg 3 or psycopg2)
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            parsed = parsed.set(drivername="postgresql+psycopg2")
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise StorageError(
            f"bad storage URL {redact(url)!r}: unknown database dialect {parsed.drivername!r}; "
            "expected sqlite or postgresql"
        ) from None
    except ImportError as exc:  # the dialect exists but its driver is not installed
        raise StorageError(
            f"storage URL {redact(url)!r} needs the database driver {exc.name or parsed.drivername!r}; "
            "for PostgreSQL install psycopg2-binary (pip install molvae[postgres])"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parent = Path(parsed.database).expanduser().resolve().parent
        if not parent.is_dir():
            raise StorageError(f"storage URL {url!r}: directory {str(parent)!r} does not exist")
    return parsed


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level; transactions are opened explicitly (BEGIN IMMEDIATE below),
    # so that a budget reservation holds the write lock from its first read.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=120000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str | None) -> Any:
    """An engine for the oracle tables; ``None`` gives a private in-memory SQLite database.

    SQLite transactions start with ``BEGIN IMMEDIATE`` (the write lock is taken at once), the
    equivalent of ``SELECT ... FOR UPDATE`` on PostgreSQL, so two workers never read the same
    budget counter. The first connection is made here, so an unreachable server fails now.

    :raises StorageError: for bad URLs and servers that refuse the connection.
    """
    import sqlalchemy as sa
    from sqlalchemy.pool import StaticPool

    if url is None:
        engine = sa.create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        parsed = check_url(url)
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": 120}
        else:
            kwargs["connect_args"] = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
        engine = sa.create_engine(parsed, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        with engine.connect():
            pass
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StorageError(f"cannot open storage {redact(url or 'sqlite://')!r}: {reason}") from None
    return engine


def optuna_storage(url: str | None) -> Any:
    """The optuna storage for ``url``: RDB for a URL, in-memory for ``None``."""
    import optuna

    if url is None:
        return optuna.storages.InMemoryStorage()
    parsed = check_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 120}
    for attempt in range(6):
        try:
            storage = optuna.storages.RDBStorage(parsed.render_as_string(hide_password=False), engine_kwargs=kwargs)
            if parsed.get_backend_name() == "sqlite":
                _fast_sqlite(storage.engine)
            return storage
        except Exception as exc:  # optuna wraps driver errors in several types
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            # several workers creating optuna's tables at once: the losers retry and find them made
            if attempt < 5 and any(w in reason.lower() for w in ("duplicate", "already exists", "deadlock", "locked", "unique constraint")):
                time.sleep(0.2 * (attempt + 1) * (1 + random.random()))
                continue
            raise StorageError(f"cannot open storage {redact(url)!r}: {reason}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _fast_sqlite(engine: Any) -> None:
    """WAL journal and ``synchronous=NORMAL`` for optuna's engine.

    optuna commits once per parameter, i.e. once per latent dimension per trial; with SQLite's
    default rollback journal each commit is an fsync (milliseconds), with WAL + NORMAL it is not
    (a power cut may lose the last commits, never corrupt the file). New connections get the
    settings; the pool is emptied so existing ones are replaced.
    """
    import sqlalchemy as sa

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=120000")
        cur.close()

    sa.event.listen(engine, "connect", pragmas)
    engine.dispose()


def default_url(out: str | os.PathLike) -> str:
    """``sqlite:///OUT/study.db``: the default storage of a run directory."""
    return f"sqlite:///{Path(out).resolve() / 'study.db'}"
