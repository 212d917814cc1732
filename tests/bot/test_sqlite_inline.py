"""bot.store.sqlite_inline: SQLite statements on the event loop, writers of the process taking turns,
against a real database file migrated like the gateway's."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.store import sqlite_inline
from bot.store.db import make_engine, sessionmaker, upgrade


@pytest.fixture
async def sm(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    await upgrade(url)
    engine = make_engine(url)
    yield sessionmaker(engine), tmp_path / "gw.db"
    await engine.dispose()


async def contacts(session) -> int:
    return (await session.execute(text("SELECT count(*) FROM contacts"))).scalar_one()


INSERT = text("INSERT INTO contacts (public_id, attributes, created_at, updated_at) "
              "VALUES (:p, '{}', '2026-01-01', '2026-01-01')")


async def test_a_second_writer_waits_for_the_first_ones_commit_and_readers_never_wait(sm):
    make, path = sm
    order: list[str] = []
    first_wrote = asyncio.Event()

    async def first():
        async with make() as s:
            await s.execute(INSERT, {"p": "a"})
            first_wrote.set()
            order.append("first wrote")
            await asyncio.sleep(0.3)  # awaits something else inside its transaction
            await s.commit()
            order.append("first committed")

    async def second():
        await first_wrote.wait()
        async with make() as s:
            await s.execute(INSERT, {"p": "b"})
            order.append("second wrote")
            await s.commit()

    async def reader():
        await first_wrote.wait()
        async with make() as s:
            seen = await contacts(s)  # not blocked by the open write, and does not see it
        order.append(f"read {seen}")

    await asyncio.gather(first(), second(), reader())
    assert order == ["first wrote", "read 0", "first committed", "second wrote"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 2


async def test_a_writer_that_never_finishes_makes_the_next_fail_like_sqlite_not_hang(sm, monkeypatch):
    from sqlalchemy.exc import OperationalError

    make, _ = sm
    monkeypatch.setattr(sqlite_inline, "WRITER_WAIT_SECONDS", 0.2)
    async with make() as stuck:
        await stuck.execute(INSERT, {"p": "a"})
        async with make() as s:
            with pytest.raises(OperationalError, match="database is locked"):
                await s.execute(INSERT, {"p": "b"})
        await stuck.rollback()
    async with make() as s:  # released: writing works again
        await s.execute(INSERT, {"p": "c"})
        await s.commit()
        assert await contacts(s) == 1


async def test_a_failed_write_releases_the_lock(sm):
    make, _ = sm
    async with make() as s:
        await s.execute(INSERT, {"p": "a"})
        await s.commit()
    async with make() as s:
        with pytest.raises(IntegrityError, match="UNIQUE constraint failed: contacts.public_id"):
            await s.execute(INSERT, {"p": "a"})  # public_id is unique
        await s.rollback()
    async with make() as s:
        await s.execute(INSERT, {"p": "b"})
        await s.commit()
        assert await contacts(s) == 2
