"""Database engine and migrations."""
from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def ensure_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder (a fresh checkout has no var/ yet)."""
    path = sqlite_file(url)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL",  # readers never block the writer
                  "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON")


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL (None for an in-memory database)."""
    path = url.split(":///", 1)[1] if url.startswith("sqlite") and ":///" in url else ""
    path = path.split("?", 1)[0]
    return path if path and path != ":memory:" else None


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        ensure_sqlite_folder(url)
        path = sqlite_file(url)
        if path is not None:
            from .sqlite_inline import async_creator

            # statements run on the event loop (bot/store/sqlite_inline.py explains why and how)
            return create_async_engine(url, async_creator=async_creator(path, SQLITE_PRAGMAS))
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL: readers never block the writer
            cur = dbapi_conn.cursor()
            for pragma in (*SQLITE_PRAGMAS, "PRAGMA busy_timeout=30000"):
                cur.execute(pragma)
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_sync(url: str, revision: str = "head") -> None:
    from alembic import command

    ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Run the migrations (Alembic drives its own event loop, so it runs in a thread)."""
    await asyncio.get_running_loop().run_in_executor(None, upgrade_sync, url, revision)
