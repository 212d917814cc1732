"""Export and delete everything about one contact (GDPR) through the real stack: the gateway's rows
and the Rasa tracker store's events of the contact's conversation go; another contact's stay."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid

import pytest

from knowledge_base.config import PROJECT_ROOT

pytestmark = pytest.mark.stack


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "privacy", *args], env=stack.env, capture_output=True,
                          text=True, cwd=PROJECT_ROOT, timeout=120)


def contact_id(stack, sender: str) -> str:
    with stack.db() as db:
        return db.execute("SELECT c.public_id FROM contacts c JOIN contact_identities i ON i.contact_id = c.id "
                          "WHERE i.channel = 'rest' AND i.source_id = ?", (sender,)).fetchone()[0]


def tracker_rows(stack, sender_id: str) -> int:
    path = stack.env["RASA_TRACKER_STORE_URL"].split("///", 1)[1]
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM events WHERE sender_id = ?", (sender_id,)).fetchone()[0]


def gateway_rows(stack, public_id: str) -> dict:
    with stack.db() as db:
        pk = db.execute("SELECT id FROM contacts WHERE public_id = ?", (public_id,)).fetchone()
        if pk is None:
            return {"contacts": 0}
        convs = [r[0] for r in db.execute("SELECT id FROM conversations WHERE contact_id = ?", (pk[0],))]
        q = ",".join("?" * len(convs)) or "NULL"
        return {"contacts": 1, "conversations": len(convs),
                "messages": db.execute(f"SELECT count(*) FROM messages WHERE conversation_id IN ({q})", convs).fetchone()[0],
                "events": db.execute(f"SELECT count(*) FROM conversation_events WHERE conversation_id IN ({q})",
                                     convs).fetchone()[0]}


def test_export_then_delete_a_contact_everywhere(running_stack):
    s, other = f"priv-{uuid.uuid4().hex[:8]}", f"keep-{uuid.uuid4().hex[:8]}"
    for sender in (s, other):
        assert running_stack.ask(sender, "How do I cancel my subscription?")[0] == 200
    assert running_stack.ask(s, "my email is jana.privacy@example.com")[0] == 200
    cid, keep = contact_id(running_stack, s), contact_id(running_stack, other)
    before, tracked = gateway_rows(running_stack, cid), tracker_rows(running_stack, cid)
    kept, kept_tracked = gateway_rows(running_stack, keep), tracker_rows(running_stack, keep)
    assert before["messages"] >= 4 and before["events"] >= 1 and tracked > 0

    p = cli(running_stack, "export", f"rest:{s}")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["contact"]["id"] == cid and data["identities"] == [{"channel": "rest", "source_id": s, "verified": False}]
    texts = [m["text"] for c in data["conversations"] for m in c["messages"]]
    assert "my email is jana.privacy@example.com" in texts and len(texts) == before["messages"]
    assert any(e["type"] == "kb_answer" for c in data["conversations"] for e in c["events"])

    p = cli(running_stack, "delete", cid)
    assert p.returncode == 2 and "--yes" in p.stderr, "deleting needs --yes"
    p = cli(running_stack, "delete", cid, "--yes")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["deleted"] == cid and out["messages"] == before["messages"] and out["rasa_events"] == tracked
    assert gateway_rows(running_stack, cid) == {"contacts": 0} and tracker_rows(running_stack, cid) == 0
    with running_stack.db() as db:
        assert db.execute("SELECT count(*) FROM contact_identities WHERE source_id = ?", (s,)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM messages WHERE text LIKE '%jana.privacy%'").fetchone()[0] == 0
    assert gateway_rows(running_stack, keep) == kept and tracker_rows(running_stack, keep) == kept_tracked

    p = cli(running_stack, "export", cid)
    assert p.returncode == 1 and "no contact" in p.stderr


def test_retention_removes_old_tracker_events_of_a_sender_in_rasas_own_store(running_stack):
    import time

    from bot.insights.privacy import delete_tracker_events

    s = f"old-{uuid.uuid4().hex[:8]}"
    assert running_stack.ask(s, "How do I cancel my subscription?")[0] == 200
    cid = contact_id(running_stack, s)
    n = tracker_rows(running_stack, cid)
    url = running_stack.env["RASA_TRACKER_STORE_URL"]
    assert n > 0 and delete_tracker_events(url, [cid], time.time() - 3600) == 0, "nothing is an hour old yet"
    assert delete_tracker_events(url, [cid], time.time() + 1) == n and tracker_rows(running_stack, cid) == 0
