"""A newly published index snapshot is answered by the running bot with no restart, and
unpublishing stops it. (How fast is measured by bench/kb_search.py, not asserted here; the wait
below is only a bound so a broken watcher fails instead of hanging.)"""
from __future__ import annotations

import time
import uuid

import pytest

from knowledge_base.articles import Article, load_markdown_folder
from knowledge_base.builder import prepare_update
from knowledge_base.chunking import article_entries
from knowledge_base.config import PROJECT_ROOT, KBSettings
from knowledge_base.encoders import load_encoder
from knowledge_base.snapshot import commit_snapshot, load_current

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
    settings = KBSettings.from_env(running_stack.env)
    articles = load_markdown_folder(PROJECT_ROOT / "data" / "knowledge_base").articles
    encoder = load_encoder(settings.encoder, 1)
    secondary = load_encoder(settings.secondary_encoder, 1) if settings.retrieval == "hybrid" else None
    assert "/help/en/latte-art-class" not in _answer_link(running_stack, "live-before")

    def publish(arts):  # the library's live-update path (the one the action server's /kb/sync takes)
        current = load_current(settings.index_dir, with_vectors=True)
        return commit_snapshot(settings.index_dir, prepare_update(settings, arts, encoder, secondary, current))

    snap = publish(articles + [NEW])
    # only the new article's entries were embedded; everything else was reused
    assert snap.manifest["embedded_vectors"] == len(article_entries(NEW))
    assert snap.manifest["retrieval"] == settings.retrieval
    _wait_for(running_stack, present=True)
    publish(articles)
    _wait_for(running_stack, present=False)
