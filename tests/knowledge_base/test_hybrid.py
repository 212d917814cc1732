"""The hybrid ranking (two encoders + BM25 + per-article classifier, fused) survives a snapshot
round trip unchanged and drives the Searcher's decisions."""
import numpy as np

from knowledge_base.builder import fit_hybrid
from knowledge_base.evaluate import Question
from knowledge_base.live import LiveKnowledgeBase
from knowledge_base.search import Searcher
from knowledge_base.snapshot import commit_snapshot, prepare_snapshot

from ..fakes import HashingEncoder, article

ARTS = [
    article("reset-password-en", "How do I reset my password?", "Use the forgot password link on the sign-in page.",
            questions=("I forgot my password", "cannot log in")),
    article("reset-password-de", "Wie setze ich mein Passwort zurück?", "Nutzen Sie den Link Passwort vergessen.",
            locale="de", group="reset-password", questions=("Passwort vergessen",)),
    article("cancel-subscription-en", "How do I cancel my subscription?", "Account, Subscription, Cancel.",
            questions=("stop my plan", "end my membership")),
    article("track-order-en", "How do I track my order?", "Use the tracking link in your shipping email.",
            questions=("where is my parcel",)),
    article("gift-subscription-en", "Gift subscriptions", "Gift boxes for 3, 6 or 12 months.",
            questions=("buy a subscription as a present",)),
]
QUESTIONS = [Question("I forgot my password", "reset-password", "en"), Question("Passwort vergessen", "reset-password", "de"),
             Question("cancel my plan", "cancel-subscription", "en"), Question("where is my package", "track-order", "en"),
             Question("weather tomorrow", None, "en")]


def _build(tmp_path):
    primary, secondary = HashingEncoder(64, "fake-use"), HashingEncoder(48, "fake-minilm")
    snap = prepare_snapshot(tmp_path, ARTS, primary, extra_encoders={"minilm": secondary})
    snap.hybrid = fit_hybrid(snap, primary, secondary, QUESTIONS, classifier_max_articles=100)
    return commit_snapshot(tmp_path, snap), primary, secondary, snap


def test_hybrid_state_round_trips_and_ranks_identically(tmp_path):
    saved, primary, secondary, prepared = _build(tmp_path)
    assert saved.hybrid is not None and saved.manifest["extra_encoders"] == {"minilm": secondary.name}
    before = Searcher(prepared, primary, extra_encoders={"minilm": secondary})
    after = Searcher(saved, primary, extra_encoders={"minilm": secondary})
    assert after.mode == "hybrid"
    for q in QUESTIONS:
        g1, s1 = before.rank(q.text, q.lang)
        g2, s2 = after.rank(q.text, q.lang)
        assert g1 == g2 and np.allclose(s1, s2, atol=1e-5)
    groups, _ = after.rank("I forgot my password", "en")
    assert groups[0] == "reset-password"


def test_the_snapshot_refuses_to_run_without_its_second_encoder(tmp_path):
    saved, primary, _, _ = _build(tmp_path)
    try:
        Searcher(saved, primary)
    except ValueError as exc:
        assert "minilm" in str(exc)
    else:
        raise AssertionError("a hybrid snapshot must not silently run without its second encoder")


def test_an_edit_reuses_both_encoders_vectors(tmp_path):
    _, primary, secondary, _ = _build(tmp_path)
    primary.calls.clear()
    secondary.calls.clear()
    snap = prepare_snapshot(tmp_path, ARTS, primary, extra_encoders={"minilm": secondary})
    assert primary.embedded == 0 and secondary.embedded == 0 and snap.manifest["embedded_vectors"] == 0


def test_live_knowledge_base_serves_hybrid_snapshots(tmp_path):
    _, primary, secondary, _ = _build(tmp_path)
    live = LiveKnowledgeBase(tmp_path, primary, extra_encoders={"minilm": secondary})
    assert live.refresh() and live.searcher.mode == "hybrid"
    res = live.searcher.search("Passwort vergessen", lang="de")
    assert res.hits[0].group == "reset-password" and res.hits[0].locale == "de"
