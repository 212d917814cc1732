"""Rasa's SQL tracker store, tuned for a server (named in endpoints.yml by bot.ops.stack).

SQLite: Rasa 3.6 opens it with SQLAlchemy 1.4's defaults for a file: no connection pool (a new
connection, opened and closed, for every read and every save) and SQLite's own defaults, a rollback
journal and ``synchronous=FULL``, so every message's save waits for several fsyncs; and SQLite work
runs on Rasa's event loop, so the whole server waits with it. Here the connections are kept (one pool
per server; Rasa uses them from its one event-loop thread), in WAL mode with ``synchronous=NORMAL``
a commit is an append to the log (durable across a crash of the process; the last commits before a
power cut may be lost, and the gateway's own database keeps every message regardless), and
``busy_timeout`` lets the gateway's privacy and retention deletes wait instead of failing.

Every database: the events of recently seen conversations are remembered as the JSON text stored in
their rows. Rasa reads a conversation's whole latest session and parses its rows on every message
(2.5 ms of CPU for a session of 120 events, measured, against 0.8 ms from the remembered text); here
a read first asks the database for the sender's event count and highest event id, which every insert
and every delete (the gateway's privacy deletion and retention, another Rasa replica) changes, and
uses the remembered text only when both are what they were after this server's last save. The
tracker is then built from that text exactly as Rasa builds it from the rows.
"""
from __future__ import annotations

import itertools
import json
import logging
from collections import OrderedDict
from typing import Any, Optional

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

logger = logging.getLogger(__name__)

SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=30000")
DEFAULT_CACHE_SIZE = 1000  # conversations; endpoints.yml may set tracker_store.cache_size (0: off)

Stamp = tuple  # (number of the sender's events, highest event id)


class TunedSQLTrackerStore(SQLTrackerStore):
    def __init__(self, *args: Any, cache_size: int = DEFAULT_CACHE_SIZE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.engine.dialect.name == "sqlite":
            old = self.engine
            self.engine = sa.create_engine(old.url, poolclass=QueuePool, pool_size=2, max_overflow=8,
                                           connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
            old.dispose()
        self.cache_size = max(0, int(cache_size))
        self._stamp_sql = sa.text(f"SELECT count(id), max(id) FROM {self.SQLEvent.__table__.name} "
                                  "WHERE sender_id = :sender_id")
        # sender -> Remembered: the stamp after this server's last read or save, and the rows of the
        # latest session as Rasa's query returns them
        self._recent: "OrderedDict[str, Remembered]" = OrderedDict()

    def _stamp(self, session, sender_id: str) -> Stamp:
        # plain SQL: through the ORM this query cost three times as much as in the database
        count, last = session.execute(self._stamp_sql, {"sender_id": sender_id}).one()
        return int(count or 0), int(last or 0)

    def _valid(self, session, sender_id: str) -> "Optional[Remembered]":
        entry = self._recent.get(sender_id)
        if entry is None or entry.stamp != self._stamp(session, sender_id):
            self._recent.pop(sender_id, None)
            return None
        self._recent.move_to_end(sender_id)
        return entry

    def _remember(self, sender_id: str, entry: "Remembered") -> None:
        self._recent[sender_id] = entry
        self._recent.move_to_end(sender_id)
        while len(self._recent) > self.cache_size:
            self._recent.popitem(last=False)

    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        if not self.cache_size:
            return await super().retrieve(sender_id)
        with self.session_scope() as session:
            entry = self._valid(session, sender_id)
            if entry is None:
                stamp = self._stamp(session, sender_id)  # before the rows: a later write only makes it stale
                rows = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).all()
                starts = [r.timestamp for r in rows if r.type_name == SessionStarted.type_name]
                entry = Remembered(stamp, max(starts) if starts else None, [(r.timestamp, r.data) for r in rows])
                self._remember(sender_id, entry)
        if self.domain and entry.rows:
            return DialogueStateTracker.from_dict(sender_id, [json.loads(data) for _, data in entry.rows],
                                                  self.domain.slots)
        return None

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Rasa's save (the events not stored yet are inserted), in one transaction that also reads
        the sender's new stamp, so what is remembered is exactly what is stored."""
        await self.stream_events(tracker)
        sender_id = tracker.sender_id
        with self.session_scope() as session:
            entry = self._valid(session, sender_id) if self.cache_size else None
            stored = len(entry.rows) if entry is not None else self._event_query(
                session, sender_id, fetch_events_from_all_sessions=False).count()
            rows = []
            for ev in itertools.islice(tracker.events, stored, len(tracker.events)):
                data = ev.as_dict()
                rows.append(self.SQLEvent(sender_id=sender_id, type_name=ev.type_name, timestamp=data.get("timestamp"),
                                          intent_name=data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                                          action_name=data.get("name"), data=json.dumps(data)))
            session.add_all(rows)
            session.flush()
            after = self._stamp(session, sender_id) if entry is not None else None
            new = [(r.id, r.timestamp, r.type_name, r.data) for r in rows]  # before the commit expires them
            session.commit()
        logger.debug(f"Tracker with sender_id '{sender_id}' stored to database")
        if entry is None:
            return
        if after != (entry.stamp[0] + len(new), max([entry.stamp[1], *(row_id for row_id, *_ in new)])):
            self._recent.pop(sender_id, None)  # somebody else changed this conversation: read it next time
            return
        self._remember(sender_id, entry.extended(after, [row[1:] for row in new]))


class Remembered:
    """One conversation's latest session as stored: ``rows`` are (timestamp, JSON) in id order."""

    __slots__ = ("stamp", "session_start", "rows")

    def __init__(self, stamp: Stamp, session_start: Optional[float], rows: list):
        self.stamp, self.session_start, self.rows = stamp, session_start, rows

    def extended(self, stamp: Stamp, new: list) -> "Remembered":
        """After inserting ``new`` (timestamp, type name, JSON) rows. Rasa's query returns the rows
        whose timestamp is at least the latest ``session_started``'s (all rows when there is none)."""
        starts = [ts for ts, kind, _ in new if kind == SessionStarted.type_name]
        start = max([s for s in (self.session_start, *starts) if s is not None], default=None)
        rows = self.rows + [(ts, data) for ts, _, data in new]
        if start is not None:
            rows = [(ts, data) for ts, data in rows if ts is not None and ts >= start]
        return Remembered(stamp, start, rows)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        cur.execute(pragma)
    cur.close()
