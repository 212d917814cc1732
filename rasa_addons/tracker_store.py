"""Rasa's SQL tracker store with SQLite tuned for a server (named in endpoints.yml by bot.stack).

Rasa 3.6 opens SQLite with SQLAlchemy 1.4's defaults for a file: no connection pool (a new connection,
opened and closed, for every read and every save) and SQLite's own defaults, a rollback journal and
``synchronous=FULL``, so every message's save waits for several fsyncs; and SQLite work runs on
Rasa's event loop, so the whole server waits with it. Here the connections are kept (one pool per
server; Rasa uses them from its one event-loop thread). In WAL mode with ``synchronous=NORMAL`` a commit is an append to the log
(durable across a crash of the process; the last commits before a power cut may be lost, and the
gateway's own database keeps every message regardless); ``busy_timeout`` lets the gateway's
privacy and retention deletes wait instead of failing. PostgreSQL is used exactly as by Rasa.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=30000")


class TunedSQLTrackerStore(SQLTrackerStore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.engine.dialect.name == "sqlite":
            old = self.engine
            self.engine = sa.create_engine(old.url, poolclass=QueuePool, pool_size=2, max_overflow=8,
                                           connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
            old.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        cur.execute(pragma)
    cur.close()
