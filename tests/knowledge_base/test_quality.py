"""Answer quality floors of the shipped knowledge base, on questions nothing was tuned on.

The index `make run` serves (built by `python -m bot setup`, calibrated on
data/eval/sample_validation.jsonl) answers data/eval/sample_test.jsonl: customers' questions in
English, German, Turkish and Japanese, one-word topics among them, and questions the help centre
does not answer. The floors sit a little under what bench/quality_eval.py measured (README,
"Retrieval (measured)"); a change that makes the bot answer worse, or answer when it should hand
off, fails here.
"""
import os

import pytest

from knowledge_base.config import PROJECT_ROOT
from knowledge_base.evaluate import load_questions, search_metrics

pytestmark = pytest.mark.slow

# per language: top-1 at least, wrong answers at most, in-scope hand-offs at most
# measured (bench/results/quality.json, "sample"): en .952/.000/.095, de .898/.000/.136,
# tr .848/.017/.339, ja .931/.017/.138; out-of-scope recall .892, AUROC .913, wrong share .044
FLOORS = {
    "en": {"top1": 0.90, "wrong_answer_rate": 0.05, "in_scope_handoff_rate": 0.15},
    "de": {"top1": 0.85, "wrong_answer_rate": 0.05, "in_scope_handoff_rate": 0.20},
    "tr": {"top1": 0.80, "wrong_answer_rate": 0.05, "in_scope_handoff_rate": 0.42},
    "ja": {"top1": 0.88, "wrong_answer_rate": 0.05, "in_scope_handoff_rate": 0.22},
}
OVERALL = {"oos_recall": 0.85, "auroc": 0.87, "wrong_share_of_answers": 0.08}


@pytest.fixture(scope="module")
def shipped_searcher():
    from bot.settings import Settings
    from bot.ops.stack import ensure_index
    from knowledge_base.live import LiveKnowledgeBase
    from knowledge_base.encoders import load_encoder

    settings = Settings.from_env({**os.environ})
    ensure_index(settings)
    kb = settings.kb
    live = LiveKnowledgeBase(kb.index_dir, load_encoder(kb.encoder, kb.encoder_threads), kb.default_locale,
                             kb.encoder_threads)
    assert live.refresh(), live.last_error
    return live.searcher


@pytest.fixture(scope="module")
def test_metrics(shipped_searcher):
    return search_metrics(shipped_searcher, load_questions(PROJECT_ROOT / "data" / "eval" / "sample_test.jsonl"))


@pytest.mark.parametrize("lang", sorted(FLOORS))
def test_each_language_is_answered_right_and_handed_off_honestly(test_metrics, lang):
    got = test_metrics["per_lang"][lang]
    floor = FLOORS[lang]
    assert got["top1"] >= floor["top1"], got
    assert got["wrong_answer_rate"] <= floor["wrong_answer_rate"], got
    assert got["in_scope_handoff_rate"] <= floor["in_scope_handoff_rate"], got


def test_questions_the_help_centre_does_not_answer_are_handed_off(test_metrics):
    assert test_metrics["oos_recall"] >= OVERALL["oos_recall"], test_metrics
    assert test_metrics["auroc"] >= OVERALL["auroc"], test_metrics
    assert test_metrics["wrong_share_of_answers"] <= OVERALL["wrong_share_of_answers"], test_metrics


def test_the_shipped_snapshot_is_calibrated_on_the_validation_questions(shipped_searcher):
    cal = shipped_searcher.snapshot.manifest.get("calibration") or {}
    assert cal.get("source") == "labelled questions"
    assert set(shipped_searcher.confidence) == {"en", "other"}


def test_a_question_without_a_language_is_searched_in_the_one_it_is_written_in(shipped_searcher):
    """`python -m knowledge_base search QUESTION` (no --lang) and any caller without a language hint:
    the language is detected, so the confidence model of its group decides (it failed before)."""
    for text, lang, group in [("How do I reset my password?", "en", "reset-password"),
                              ("Wie kündige ich mein Abo?", "de", "cancel-subscription"),
                              ("Şifremi unuttum", "tr", "reset-password")]:
        res = shipped_searcher.search(text)
        assert res.lang == lang and res.hits[0].group == group, (text, res.lang, res.hits[:2])
        assert res.hits[0].locale == lang and res.decision == "answer", (text, res.decision)


def test_a_topic_word_in_the_title_of_a_top_article_offers_the_articles_instead_of_i_dont_know(shipped_searcher):
    """"change" ranks the three change-* articles first, but the confidence model is unsure which one
    is meant: it handed off ("I don't know") although the help centre has the topic."""
    from knowledge_base.search import title_words

    res = shipped_searcher.search("change", "en")
    assert res.decision == "clarify" and res.n_decided == 3, (res.decision, res.hits[:3])
    assert {h.group for h in res.hits[:3]} >= {"change-email", "change-address"}
    words = title_words(shipped_searcher.snapshot.articles.values())
    assert "change" in words["change-address"] and "address" in words["change-address"]
    assert not any({"how", "my", "i"} & w for w in words.values())  # in too many titles to name a topic
    # a question of more words is the confidence model's alone: "tea" is in no title, still "I don't know"
    assert shipped_searcher.search("do you sell green tea", "en").decision == "handoff"
