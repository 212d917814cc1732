import threading
from dataclasses import replace

import numpy as np
import pytest

from knowledge_base.chunking import article_entries
from knowledge_base.index import VectorIndex, stable_id
from knowledge_base.live import LiveKnowledgeBase
from knowledge_base.search import Searcher
from knowledge_base.snapshot import build_snapshot, current_snapshot_path, load_current, load_snapshot

from ..fakes import HashingEncoder, article


def _random_unit(n, dim, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_vector_index_counts_after_add_remove_and_round_trip(tmp_path):
    vecs = _random_unit(100, 32)
    ids = np.arange(1000, 1100, dtype=np.int64)
    idx = VectorIndex.build(32, ids, vecs)
    assert idx.count == 100
    assert idx.remove(ids[:10]) == 10
    assert idx.count == 90
    idx.add(ids[:5], vecs[:5])
    assert idx.count == 95
    scores, found = idx.search(vecs[3:4], 1)
    assert found[0][0] == 1003 and scores[0][0] == pytest.approx(1.0, abs=1e-5)
    idx.save(tmp_path / "i.faiss")
    back = VectorIndex.load(tmp_path / "i.faiss", 32)
    assert back.count == 95
    assert back.search(vecs[50:51], 1)[1][0][0] == 1050
    with pytest.raises(ValueError):
        VectorIndex.load(tmp_path / "i.faiss", 16)


def test_approximate_index_above_threshold_keeps_recall_and_supports_removal():
    # clustered like real sentence embeddings (topics), not uniform noise
    rng = np.random.default_rng(1)
    centres = _random_unit(40, 32, seed=3)
    vecs = centres[rng.integers(0, 40, 3000)] + 0.12 * rng.normal(size=(3000, 32)).astype(np.float32)
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(3000, dtype=np.int64)
    idx = VectorIndex.build(32, ids, vecs, approx_threshold=1000)
    assert idx.kind == "ivf"
    exact = VectorIndex.build(32, ids, vecs)
    q = vecs[rng.integers(0, 3000, 50)] + 0.05 * rng.normal(size=(50, 32)).astype(np.float32)
    a = idx.search(q, 10)[1]
    e = exact.search(q, 10)[1]
    recall = np.mean([len(set(a[i]) & set(e[i])) / 10 for i in range(50)])
    assert recall >= 0.9
    assert idx.remove(ids[:100]) == 100 and idx.count == 2900


def test_ids_are_stable_for_the_same_article_and_position():
    assert stable_id("a-en", 3) == stable_id("a-en", 3)
    assert stable_id("a-en", 3) != stable_id("a-en", 4) != stable_id("b-en", 3)
    assert 0 <= stable_id("x", 0) < 2 ** 63


ARTS = [
    article("reset-password-en", "How do I reset my password?", "Use the forgot password link.\n\n## Steps\nOpen sign-in.",
            questions=("I forgot my password",)),
    article("cancel-subscription-en", "How do I cancel my subscription?", "Go to Account, Subscription, Cancel.",
            questions=("stop my plan",)),
    article("cancel-subscription-de", "Wie kündige ich mein Abo?", "Konto, Abonnement, Abo kündigen.",
            locale="de", group="cancel-subscription"),
    article("track-order-en", "How do I track my order?", "Use the tracking link in your email."),
]


def test_snapshot_round_trip_and_editing_one_article_reembeds_only_that_article(tmp_path):
    enc = HashingEncoder()
    snap = build_snapshot(tmp_path, ARTS, enc)
    total = sum(len(article_entries(a)) for a in ARTS)
    assert enc.embedded == total and snap.index.count == total
    loaded = load_snapshot(current_snapshot_path(tmp_path))
    assert loaded.version == snap.version and len(loaded.records) == total
    assert set(loaded.articles) == {a.id for a in ARTS}

    # unchanged articles: the same version, nothing embedded
    enc.calls.clear()
    again = build_snapshot(tmp_path, ARTS, enc)
    assert enc.embedded == 0 and again.version == snap.version

    # edit one article: only its entries are embedded; ids of the others are unchanged
    edited = [replace(ARTS[3], body="Use the tracking link in the shipping email, or Account > Orders > Track.")]
    enc.calls.clear()
    new = build_snapshot(tmp_path, ARTS[:3] + edited, enc)
    assert 0 < enc.embedded <= len(article_entries(edited[0]))
    assert new.version != snap.version
    old_ids = {i for i, r in snap.records.items() if r.article_id != "track-order-en"}
    assert old_ids <= set(new.records)

    # delete one article: nothing embedded, its entries gone
    enc.calls.clear()
    fewer = build_snapshot(tmp_path, ARTS[:3], enc)
    assert enc.embedded == 0
    assert fewer.index.count == total - len(article_entries(ARTS[3]))
    assert all(r.article_id != "track-order-en" for r in fewer.records.values())

    # drafts are not indexed
    draft = build_snapshot(tmp_path, ARTS[:3] + [replace(ARTS[3], status="draft")], enc)
    assert "track-order-en" not in draft.articles


def test_a_changed_encoder_forces_a_full_rebuild(tmp_path):
    build_snapshot(tmp_path, ARTS, HashingEncoder(dim=64))
    other = HashingEncoder(dim=32, name="other")
    snap = build_snapshot(tmp_path, ARTS, other)
    assert other.embedded == sum(len(article_entries(a)) for a in ARTS)
    assert snap.manifest["encoder"] == other.name and snap.manifest["dim"] == 32
    with pytest.raises(ValueError, match="rebuild"):
        Searcher(snap, HashingEncoder(dim=64))


def test_search_answers_in_the_customers_language_when_a_translation_exists(tmp_path):
    enc = HashingEncoder()
    snap = build_snapshot(tmp_path, ARTS, enc)
    s = Searcher(snap, enc)
    res = s.search("cancel my subscription", lang="de")
    assert res.hits[0].group == "cancel-subscription"
    assert res.hits[0].locale == "de" and not res.hits[0].other_language
    res = s.search("reset my password", lang="de")
    assert res.hits[0].group == "reset-password"
    assert res.hits[0].locale == "en" and res.hits[0].other_language


def test_live_knowledge_base_swaps_snapshots_atomically_under_concurrent_search(tmp_path):
    enc = HashingEncoder()
    build_snapshot(tmp_path, ARTS[:2], enc)
    live = LiveKnowledgeBase(tmp_path, enc)
    assert live.refresh() and live.ready
    first = live.searcher.version
    errors: list[BaseException] = []
    seen_versions: set[str] = set()
    stop = threading.Event()

    def searching():
        while not stop.is_set():
            try:
                s = live.searcher
                res = s.search("track my order")
                seen_versions.add(res.version)
                # every hit refers to an article of the snapshot it came from
                assert all(h.article_id in s.snapshot.articles for h in res.hits)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    threads = [threading.Thread(target=searching) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(5):
        arts = ARTS if i % 2 == 0 else ARTS[:2]
        build_snapshot(tmp_path, arts, enc)
        live.refresh()
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert live.searcher.version != first
    assert len(seen_versions) >= 2
    assert load_current(tmp_path).version == live.searcher.version


def test_a_damaged_new_snapshot_keeps_the_old_one_serving(tmp_path):
    enc = HashingEncoder()
    build_snapshot(tmp_path, ARTS, enc)
    live = LiveKnowledgeBase(tmp_path, enc)
    live.refresh()
    good = live.searcher.version
    bad = tmp_path / "snapshots" / "broken"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "CURRENT").write_text("broken\n", encoding="utf-8")
    assert live.refresh() is False
    assert live.searcher.version == good and "broken" in live.last_error


def test_an_edit_on_a_large_approximate_index_updates_it_in_place(tmp_path):
    enc = HashingEncoder(dim=32)
    arts = [article(f"topic{i:04d}-en", f"Question number {i} about topic {i % 37}",
                    f"Answer {i}: details about subject {i * 7 % 101}.\n\nMore about item {i}.") for i in range(400)]
    first = build_snapshot(tmp_path, arts, enc, approx_threshold=500)
    assert first.index.kind == "ivf" and first.index.count == first.manifest["entries"]
    edited = replace(arts[5], title="Where can I buy the limited winter roast gift box?")
    enc.calls.clear()
    second = build_snapshot(tmp_path, [edited] + arts[:5] + arts[6:], enc, approx_threshold=500)
    assert second.index.kind == "ivf" and enc.embedded == len(article_entries(edited))  # that article only
    assert second.index.count == second.manifest["entries"] == first.manifest["entries"]
    s = Searcher(second, enc)
    assert s.search("limited winter roast gift box").hits[0].article_id == "topic0005-en"
    # the old title is gone from the index
    assert all(r.text != arts[5].title for r in second.records.values())
