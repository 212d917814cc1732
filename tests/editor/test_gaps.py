"""Gaps for editors: questions the bot could not answer grouped into topics across languages, articles
never shown, pairs of articles customers confuse, and a draft made from a topic. The clustering runs on
the real multilingual encoder; the API on a gateway in front of the real action server, with
conversation events seeded through the gateway's own store code (expected values by construction)."""
from __future__ import annotations

import numpy as np
import pytest

from bot.keys import SESSIONMAKER
from bot.store import repository as repo
from knowledge_base.articles import load_markdown_folder
from knowledge_base.clustering import cluster_texts
from knowledge_base.config import PROJECT_ROOT
from knowledge_base.encoders import load_encoder

GIFT = [("Can I buy a gift card for a friend?", "en"), ("Do you sell gift vouchers?", "en"),
        ("Kann ich einen Geschenkgutschein kaufen?", "de"), ("Gibt es Gutscheine zum Verschenken?", "de"),
        ("Hediye kartı satın alabilir miyim?", "tr"), ("ギフトカードは購入できますか？", "ja")]
INVOICE = [("I need an invoice with my company's VAT number", "en"),  # (en-de alone are .38 apart: the
           ("Şirketimin vergi numarasıyla fatura alabilir miyim?", "tr"),  # German one joins via the
           ("Können Sie eine Rechnung mit unserer USt-IdNr. ausstellen?", "de")]  # en+tr centroid, .50)


@pytest.fixture(scope="module")
def use():
    return load_encoder("use-multilingual", 1)


def test_questions_about_one_missing_topic_cluster_together_across_languages(use):
    items = [GIFT[0], INVOICE[0], GIFT[2], GIFT[4], INVOICE[1], GIFT[1], GIFT[5], INVOICE[2], GIFT[3]]
    texts, langs = [t for t, _ in items], [lang for _, lang in items]
    topics = cluster_texts(use.encode(texts), texts, langs)
    assert [t.count for t in topics] == [6, 3]
    assert {texts[i] for i in topics[0].indices} == {t for t, _ in GIFT}
    assert {texts[i] for i in topics[1].indices} == {t for t, _ in INVOICE}
    assert set(topics[0].languages) == {"en", "de", "tr", "ja"} and topics[0].languages[0] in ("en", "de")
    assert topics[0].label in topics[0].examples and len(topics[0].examples) == 5


def test_clustering_is_deterministic_and_checks_its_input():
    v = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]], dtype=np.float32)
    a = cluster_texts(v, ["a", "b", "c"], ["en", "en", "de"])
    assert [(t.count, t.indices) for t in a] == [(2, [0, 2]), (1, [1])]
    assert [t.to_dict() for t in a] == [t.to_dict() for t in cluster_texts(v, ["a", "b", "c"], ["en", "en", "de"])]
    assert cluster_texts(np.zeros((0, 2)), [], []) == []
    with pytest.raises(ValueError):
        cluster_texts(v, ["a"], ["en"])


def art(group: str) -> dict:
    return {"article_id": f"{group}-en", "group": group, "locale": "en", "title": group, "score": 0.5, "link": ""}


async def seed(app) -> None:
    """Gift-card questions the bot handed off (4) or answered unhelpfully (2), invoice ones (3); answers
    of cancel-subscription only; a clarify between pause and cancel, and a 'did not help' on
    cancel followed by the next best, pause."""
    async with app[SESSIONMAKER]() as session:
        async def conversation(name: str, lang: str):
            contact = await repo.get_or_create_contact(session, "rest", name)
            conv = await repo.current_conversation(session, contact, "rest")
            conv.language = lang
            await session.flush()
            return conv

        for i, (q, lang) in enumerate(GIFT[:4] + INVOICE):
            c = await conversation(f"gap-{i}", lang)
            repo.add_event(session, c, "kb_answer", {"decision": "handoff", "query": q, "articles": [art("gift-wrap")]})
        for i, (q, lang) in enumerate(GIFT[4:]):
            c = await conversation(f"unhelpful-{i}", lang)
            repo.add_event(session, c, "kb_answer", {"decision": "answer", "query": q, "articles": [art("cancel-subscription")]})
            repo.add_event(session, c, "kb_feedback", {"helpful": False, "group": "cancel-subscription"})
        c = await conversation("confused", "en")
        repo.add_event(session, c, "kb_answer", {"decision": "clarify", "query": "stop my coffee",
                                                  "articles": [art("pause-subscription"), art("cancel-subscription")]})
        repo.add_event(session, c, "kb_answer", {"decision": "chosen", "query": "stop my coffee",
                                                  "articles": [art("cancel-subscription")]})
        repo.add_event(session, c, "kb_feedback", {"helpful": False, "group": "cancel-subscription"})
        repo.add_event(session, c, "kb_answer", {"decision": "next_best", "query": "stop my coffee",
                                                  "articles": [art("pause-subscription")]})
        await session.commit()


@pytest.mark.stack
async def test_the_gaps_api_on_seeded_conversations(live_gateway):
    gw, clients = live_gateway
    await seed(gw.app)
    eve = clients["eve"]
    status, body = await eve.get("/api/editor/gaps?days=30")
    assert status == 200, body
    assert body["questions"] == 10  # 4 + 3 handed off, 2 unhelpful, 1 unhelpful "stop my coffee"
    counts = [t["count"] for t in body["topics"]]
    assert counts[:2] == [6, 3], body["topics"]
    gift = body["topics"][0]
    assert set(gift["questions"]) == {t for t, _ in GIFT} and set(gift["languages"]) == {"en", "de", "tr", "ja"}
    never = {a["group"] for a in body["never_shown"]}
    published = {a.group for a in load_markdown_folder(PROJECT_ROOT / "data" / "knowledge_base").articles}
    assert never == published - {"cancel-subscription", "pause-subscription"}  # the only ones shown
    assert body["collisions"][0] == {"groups": ["cancel-subscription", "pause-subscription"], "count": 2,
                                     "how": ["clarify", "not_helpful_then_next_best"]}

    # "create article from this": a draft with the topic's questions as alternative phrasings
    status, made = await eve.post("/api/editor/gaps/draft", {"questions": gift["questions"], "locale": "en"})
    assert status == 201, made
    head = made["article"]["head"]
    assert made["article"]["status"] == "draft" and head["title"] == gift["questions"][0]
    assert head["questions"] == gift["questions"][1:]

    assert (await eve.get("/api/editor/gaps?days=0"))[0] == 400
    assert (await eve.post("/api/editor/gaps/draft", {"questions": []}))[0] == 400
    assert (await clients["aga"].get("/api/editor/gaps"))[0] == 403
