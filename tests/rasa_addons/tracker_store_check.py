"""Run in the Rasa environment by test_tracker_store.py: conversations saved through the tuned store
must read back exactly as Rasa's own SQLTrackerStore reads them from the same database, whatever
else changed the rows meanwhile. Prints one JSON object of findings."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time

import rasa_addons  # noqa: F401 - installs the patches, as in the server
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

from rasa_addons.tracker_store import TunedSQLTrackerStore

DB, DOMAIN = sys.argv[1], sys.argv[2]


def turn(text: str, lang: str, at: float | None = None) -> list:
    events = [UserUttered(text, {"name": "faq", "confidence": 0.9}, [{"entity": "language", "value": lang, "start": 0,
                                                                       "end": 0}], metadata={"channel": "rest"}),
              SlotSet("language", lang), ActionExecuted("action_answer_from_kb"), BotUttered(f"answer to {text}"),
              ActionExecuted("action_listen")]
    if at is not None:
        for k, ev in enumerate(events):
            ev.timestamp = at + 0.01 * (k + 1)
    return events


async def main() -> None:
    domain = Domain.load(DOMAIN)
    tuned = TunedSQLTrackerStore(domain=domain, dialect="sqlite", db=DB)
    plain = SQLTrackerStore(domain=domain, dialect="sqlite", db=DB)
    out: dict = {}

    async def same(sender: str) -> bool:
        a, b = await tuned.retrieve(sender), await plain.retrieve(sender)
        if a is None or b is None:
            return a is None and b is None
        return a.current_state(EventVerbosity.ALL) == b.current_state(EventVerbosity.ALL)

    # a conversation of several turns, each one saved as the server does: retrieve, add, save
    t0 = time.time() - 100
    tracker = DialogueStateTracker.from_events("c1", [ActionExecuted("action_session_start", timestamp=t0),
                                                      SessionStarted(timestamp=t0 + 1),
                                                      ActionExecuted("action_listen", timestamp=t0 + 1)],
                                               domain.slots)
    await tuned.save(tracker)
    for i in range(4):
        tracker = await tuned.retrieve("c1")
        for ev in turn(f"question {i}", "de"):
            tracker.update(ev)
        await tuned.save(tracker)
    out["remembered_after_saves"] = "c1" in tuned._recent
    out["same_after_turns"] = await same("c1")
    out["events"] = len((await tuned.retrieve("c1")).events)

    # rows deleted behind its back (the gateway's privacy deletion): it must not serve them again
    with sqlite3.connect(DB) as db:
        db.execute("DELETE FROM events WHERE sender_id = 'c1'")
    out["deleted_reads_none"] = (await tuned.retrieve("c1")) is None and await same("c1")
    tracker = DialogueStateTracker.from_events("c1", turn("after deletion", "en"), domain.slots)
    await tuned.save(tracker)
    out["after_deletion_only_new_rows"] = await same("c1") and len((await plain.retrieve("c1")).events) == 5

    # rows added by another server: read again, not from memory
    tracker = await tuned.retrieve("c1")
    other = await plain.retrieve("c1")
    for ev in turn("on another replica", "tr"):
        other.update(ev)
    await plain.save(other)
    out["other_writer_seen"] = await same("c1") and len((await tuned.retrieve("c1")).events) == 10

    # a new session: only the latest session is read, in memory as in the database
    tracker = await tuned.retrieve("c1")
    t1 = time.time() + 60
    for ev in [ActionExecuted("action_session_start", timestamp=t1), SessionStarted(timestamp=t1 + 0.001),
               ActionExecuted("action_listen", timestamp=t1 + 0.002), *turn("new session", "ja", at=t1 + 1)]:
        tracker.update(ev)
    await tuned.save(tracker)
    out["new_session_same"] = await same("c1")
    out["new_session_events"] = len((await tuned.retrieve("c1")).events)
    out["remembered_rows_match"] = len(tuned._recent["c1"].rows) == out["new_session_events"]

    # with the memory off it is Rasa's store
    off = TunedSQLTrackerStore(domain=domain, dialect="sqlite", db=DB, cache_size=0)
    out["off_same"] = (await off.retrieve("c1")).current_state(EventVerbosity.ALL) == \
        (await plain.retrieve("c1")).current_state(EventVerbosity.ALL)
    with sqlite3.connect(DB) as db:
        out["journal_mode"] = db.execute("PRAGMA journal_mode").fetchone()[0]
    print(json.dumps(out))


asyncio.run(main())
