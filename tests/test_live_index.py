"""A newly published index snapshot is answered by the running bot with no restart, and
unpublishing stops it. (How fast is measured by bench/kb_search.py, not asserted here; the wait
below is only a bound so a broken watcher fails instead of hanging.)"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from knowledge_base.articles import Article, load_markdown_folder
from knowledge_base.chunking import article_entries
from knowledge_base.config import PROJECT_ROOT
from knowledge_base.encoders import load_encoder
from knowledge_base.snapshot import build_snapshot, load_current

pytestmark = pytest.mark.stack

NEW = Article(id="latte-art-class-en", title="Do you offer latte art classes?", locale="en", group="latte-art-class",
              body="Yes: our Berlin roastery runs a two-hour latte art class every Saturday at 11:00 for EUR 39.\n\n"
                   "## Booking\nBook at brewbox.example/classes; places are limited to eight people.",
              questions=("Can I learn latte art with you?", "Do you run barista workshops?"), tags=("events",))
QUESTION = "Can I book a latte art workshop at your roastery?"


def _answer_link(stack, sender: str) -> str:
    _, replies = stack.ask(sender, QUESTION)
    return " ".join(r.get("text") or "" for r in replies)


def _wait_for(stack, present: bool, timeout: float = 15.0) -> float:
    t0 = time.time()
    while time.time() - t0 < timeout:
        text = _answer_link(stack, f"live-{uuid.uuid4().hex[:8]}")
        if ("/help/en/latte-art-class" in text) == present:
            return time.time() - t0
        time.sleep(0.2)
    raise AssertionError(f"the bot did not {'start' if present else 'stop'} answering within {timeout} s")


def test_publish_then_unpublish_reaches_the_running_bot_without_a_restart(running_stack):
    index_dir = Path(running_stack.env["KB_INDEX_DIR"])
    articles = load_markdown_folder(PROJECT_ROOT / "data" / "knowledge_base").articles
    encoder = load_encoder("use-multilingual", 1)
    decision = load_current(index_dir).decision
    assert "/help/en/latte-art-class" not in _answer_link(running_stack, "live-before")

    snap = build_snapshot(index_dir, articles + [NEW], encoder, decision)
    # only the new article's entries were embedded; everything else was reused
    assert snap.manifest["embedded_vectors"] == len(article_entries(NEW))
    _wait_for(running_stack, present=True)
    build_snapshot(index_dir, articles, encoder, decision)
    _wait_for(running_stack, present=False)
