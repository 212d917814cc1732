"""How sure the hybrid ranking is (knowledge_base.confidence) and what it is calibrated on without
labelled questions (knowledge_base.calibration)."""
import numpy as np

from knowledge_base.builder import fit_hybrid, needs_recalibration
from knowledge_base.calibration import gold_matrix, heldout_scores, pseudo_questions, without_gold
from knowledge_base.confidence import Calibration, GroupModel, choose_thresholds, fit_group, outcomes
from knowledge_base.decision import ANSWER, CLARIFY, HANDOFF
from knowledge_base.evaluate import Question, search_metrics
from knowledge_base.hybrid import HybridScorer, training_rows
from knowledge_base.search import Searcher, hybrid_layout
from knowledge_base.snapshot import commit_snapshot, prepare_snapshot

from ..fakes import HashingEncoder, article

TOPICS = {
    "reset-password": ("How do I reset my password?", "Use the forgot password link on the sign-in page.",
                       ("I forgot my password", "password reset link", "cannot remember my password",
                        "change my forgotten password")),
    "cancel-subscription": ("How do I cancel my subscription?", "Account, Subscription, Cancel.",
                            ("stop my subscription", "end my subscription", "cancel the subscription plan",
                             "quit my subscription")),
    "track-order": ("How do I track my order?", "Use the tracking link in your shipping email.",
                    ("where is my order", "track my parcel", "order tracking number", "follow my order delivery")),
    "gift-subscription": ("Gift subscriptions", "Gift boxes for 3, 6 or 12 months.",
                          ("buy a gift box", "gift for a friend", "give a present", "gift card for coffee")),
    "refund-status": ("When will I get my refund?", "Refunds arrive within 5 to 7 days.",
                      ("refund not received", "where is my refund money", "refund takes long", "money back refund")),
    "change-address": ("How do I change my delivery address?", "Edit the address under Account, Addresses.",
                       ("update my address", "new home address", "moved house address", "wrong address on order")),
}


def _articles():
    arts = [article(f"{g}-en", t, b, questions=q) for g, (t, b, q) in TOPICS.items()]
    arts.append(article("reset-password-de", "Wie setze ich mein Passwort zurück?", "Passwort vergessen klicken.",
                        locale="de", group="reset-password", questions=("Passwort vergessen",)))
    return arts


def _snapshot(tmp_path, questions=()):
    use, minilm = HashingEncoder(64, "fake-use"), HashingEncoder(48, "fake-minilm")
    snap = prepare_snapshot(tmp_path, _articles(), use, extra_encoders={"minilm": minilm})
    snap.hybrid = fit_hybrid(snap, use, minilm, list(questions), classifier_max_articles=100)
    return snap, use, minilm


def test_the_cross_lingual_classifier_learns_from_the_canonical_language_only():
    # articles 0 and 1 have English entries, article 2 only German ones
    entry_article = [0, 0, 0, 1, 1, 2, 2]
    entry_langs = ["en", "de", "en", "en", "tr", "de", "de"]
    assert training_rows(entry_article, entry_langs, "canonical", "en").tolist() == [0, 2, 3, 5, 6]
    assert training_rows(entry_article, entry_langs, "all", "en").tolist() == list(range(7))


def test_held_out_scores_leave_out_the_question_itself_not_its_article(tmp_path):
    snap, use, minilm = _snapshot(tmp_path)
    layout = hybrid_layout(snap)
    state = snap.hybrid
    scorer = HybridScorer.from_state(state, layout.entry_group, {"use": snap.vectors, "minilm": snap.extra_vectors["minilm"]},
                                     layout.entry_langs)
    kinds = [snap.records[rid].kind for rid in snap.order]
    idx = pseudo_questions(kinds, layout.entry_group)
    assert len(idx) and all(kinds[i] == "question" for i in idx)
    scores = heldout_scores(scorer, idx, layout.entry_texts, layout.entry_langs, "en", 10.0)
    V = snap.vectors
    for j, i in enumerate(idx[:5].tolist()):
        art = layout.entry_group[i]
        others = [k for k in range(len(V)) if layout.entry_group[k] == art and k != i]
        # the article's score is the best of its OTHER entries: the question does not find itself
        assert np.isclose(scores["use"][j, art], max(float(V[i] @ V[k]) for k in others), atol=1e-5)
        assert scores["use"][j, art] < 0.999
    for name in ("clf", "clfx"):  # probabilities of classifiers that did not see the question
        assert np.allclose(scores[name].sum(1), 1.0, atol=1e-4)
    gold = gold_matrix([layout.entry_group[i] for i in idx], scorer.n_articles)
    gone = without_gold(scores, gold)
    assert (gone["use"][gold] == -1.0).all() and (gone["bm25"][gold] == 0.0).all()
    assert (gone["clf"][gold] == 0.0).all() and np.allclose(gone["clf"].sum(1), 1.0, atol=1e-4)


def test_a_knowledge_base_without_labelled_questions_is_calibrated_on_its_own(tmp_path):
    snap, use, minilm = _snapshot(tmp_path)
    cal = snap.hybrid["calibration"]
    assert cal["source"] == "the articles' own questions"
    assert set(snap.hybrid["confidence"]) == {"en", "other"}
    # the classifier's scale comes from questions it did not see: a confident answer is a few
    # standard deviations above the usual top scores, not tens (the scale of its training entries)
    mu, sd = snap.hybrid["configs"]["en"]["stats"]["clf"]
    assert sd > 0.05
    from knowledge_base.builder import finish_calibration

    finish_calibration(snap, use, {"minilm": minilm}, "en", [])
    saved = commit_snapshot(tmp_path, snap)
    s = Searcher(saved, use, extra_encoders={"minilm": minilm})
    assert s.search("I forgot my password, how do I reset it", "en").hits[0].group == "reset-password"
    res = s.search("what is the weather like on Mars tomorrow", "en")
    assert res.decision == HANDOFF and res.confidence is not None and res.confidence < 0.5
    assert saved.decision.calibrated_on == "the articles' own questions"


def test_labelled_questions_are_used_when_they_are_about_this_knowledge_base(tmp_path):
    qs = [Question(q, g, "en") for g, (_, _, qq) in TOPICS.items() for q in qq[:3]]
    qs += [Question(q, g, "en") for g, (t, _, _) in TOPICS.items() for q in (t.lower(),)]
    qs += [Question(f"{w} something", None, "en") for w in ("weather", "football", "pizza", "holiday")]
    assert sum(q.gold is not None for q in qs) < 30  # too few: the articles' own questions are used
    snap, _, _ = _snapshot(tmp_path, qs)
    assert snap.hybrid["calibration"]["source"] == "the articles' own questions"
    qs += [Question(q.upper(), g, "en") for g, (_, _, qq) in TOPICS.items() for q in qq[:3]]
    snap2, _, _ = _snapshot(tmp_path / "b", qs)
    assert snap2.hybrid["calibration"]["source"] == "labelled questions"


def _calibration(p1, right, unsupported):
    n = len(p1)
    F = np.zeros((n, 2))
    return Calibration(F, ["fused_top", "fused_margin"], np.array(right), np.array(right),
                       np.array(unsupported), np.arange(n), np.array(["en"] * n), np.full(n, 8), np.zeros(n, bool))


def test_thresholds_keep_within_the_handoff_budget():
    rng = np.random.default_rng(0)
    n_in, n_out = 200, 200
    p1 = np.concatenate([rng.uniform(0.2, 1.0, n_in), rng.uniform(0.0, 0.6, n_out)])
    right = np.concatenate([p1[:n_in] > 0.35, np.zeros(n_out, bool)])
    unsupported = np.concatenate([np.zeros(n_in, bool), np.ones(n_out, bool)])
    cal = _calibration(p1, right, unsupported)
    p3 = np.full(len(p1), -1.0)
    free = choose_thresholds(cal, p1, p3, max_handoff=1.0)
    capped = choose_thresholds(cal, p1, p3, max_handoff=0.05)
    o_free = outcomes(cal, p1, p3, *free[:3])
    o_capped = outcomes(cal, p1, p3, *capped[:3])
    assert o_free["in_scope_handoff_rate"] > 0.05  # left alone, it would hand off more
    assert o_capped["in_scope_handoff_rate"] <= 0.05 + 1e-9
    assert o_capped["oos_recall"] < o_free["oos_recall"]  # the price of the budget


def test_group_model_decides_and_round_trips():
    F = np.array([[0.0, 1.0], [1.0, 0.0]])
    m = GroupModel(["a", "b"], np.zeros(2), np.ones(2), np.array([4.0, -4.0]), 0.0, np.array([2.0, 0.0]), 0.0,
                   answer=0.7, margin=0.1, clarify=0.6)
    p1, p3 = m.predict(F)
    assert p1[0] < 0.1 and p1[1] > 0.9
    assert m.decide(0.9, 0.9, 0.5) == ANSWER
    assert m.decide(0.9, 0.9, 0.05) == CLARIFY  # a runner-up within the margin: let the customer choose
    assert m.decide(0.5, 0.65, 0.5) == CLARIFY
    assert m.decide(0.5, 0.5, 0.5) == HANDOFF
    again = GroupModel.from_dict(m.to_dict())
    assert np.allclose(again.predict(F)[0], p1) and again.decide(0.5, 0.65, 0.5) == CLARIFY


def _noisy_calibration(noise: float, seed: int = 1) -> Calibration:
    rng = np.random.default_rng(seed)
    n = 400
    x = rng.normal(size=n)
    right = x + rng.normal(scale=noise, size=n) > -0.5
    unsupported = ~right & (rng.uniform(size=n) < 0.7)
    F = np.stack([x, rng.normal(size=n)], 1)
    return Calibration(F, ["fused_top", "fused_margin"], right, right, unsupported, np.arange(n),
                       np.array(["en"] * n), np.full(n, 8), np.zeros(n, bool))


def test_fit_group_keeps_wrong_answers_down_before_the_handoff_budget():
    from knowledge_base.confidence import MAX_WRONG

    model, report = fit_group(_noisy_calibration(0.1), max_handoff=0.2)
    assert model.coef1[0] > 0  # the informative feature drives the confidence
    assert report["in_scope_handoff_rate"] <= 0.2 + 1e-9 and report["wrong_answer_rate"] <= MAX_WRONG + 1e-9
    assert set(report["per_lang"]) == {"en"}
    # a knowledge base that cannot answer well: keeping the budget would mean guessing, so it hands off more
    _, report = fit_group(_noisy_calibration(2.0), max_handoff=0.2)
    assert report["wrong_answer_rate"] <= MAX_WRONG + 1e-9 and report["in_scope_handoff_rate"] > 0.2


def test_search_metrics_accept_several_right_articles(tmp_path):
    snap, use, minilm = _snapshot(tmp_path)
    from knowledge_base.builder import finish_calibration

    finish_calibration(snap, use, {"minilm": minilm}, "en", [])
    s = Searcher(snap, use, extra_encoders={"minilm": minilm})
    one = search_metrics(s, [Question("I forgot my password", "reset-password", "en")])
    many = search_metrics(s, [Question("I forgot my password", ("cancel-subscription", "reset-password"), "en")])
    wrong = search_metrics(s, [Question("I forgot my password", ("cancel-subscription", "gift-subscription"), "en")])
    assert one["top1"] == many["top1"] == 1.0 and wrong["top1"] == 0.0


def test_a_publish_that_replaces_most_articles_recalibrates(tmp_path):
    snap, use, minilm = _snapshot(tmp_path)
    current = commit_snapshot(tmp_path, snap)
    same = prepare_snapshot(tmp_path, _articles()[:-1] + [article("new-one-en", "A new topic", "Body.")], use,
                            extra_encoders={"minilm": minilm})
    assert not needs_recalibration(current, same)  # one article of seven changed
    other = prepare_snapshot(tmp_path, [article(f"bank-{i}-en", f"Bank topic {i}", "Body.") for i in range(7)], use,
                             extra_encoders={"minilm": minilm})
    assert needs_recalibration(current, other)


def test_words_are_counted_in_every_script():
    from knowledge_base.confidence import word_count

    assert word_count("refund") == 1 and word_count("promo code") == 2 and word_count("Konto löschen") == 2
    assert word_count("パスワード") == 2 and word_count("返品") == 1
    assert word_count("パスワードを何度も間違えてログインできなくなりました") >= 6
    assert word_count("Ich will mein Abo für ein paar Wochen ruhen lassen") == 10


def test_topic_messages_get_their_own_thresholds():
    m = GroupModel(["a"], np.zeros(1), np.ones(1), np.zeros(1), 0.0, np.zeros(1), 0.0,
                   answer=0.7, margin=0.0, clarify=0.6, topic=(0.8, 0.0, 0.2))
    assert m.decide(0.5, 0.3, 1.0, words=12) == HANDOFF  # a question: the group's thresholds
    assert m.decide(0.5, 0.3, 1.0, words=1) == CLARIFY  # "refund": the articles on it are offered
    assert m.decide(0.75, 0.9, 1.0, words=1) == CLARIFY and m.decide(0.75, 0.9, 1.0, words=12) == ANSWER
    assert GroupModel.from_dict(m.to_dict()).topic == (0.8, 0.0, 0.2)
