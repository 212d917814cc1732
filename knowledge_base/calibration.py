"""Questions to calibrate on when nobody labelled any: the knowledge base's own "also asked as"
questions, each scored as a customer's question would be, with itself left out.

- In scope: the question is left out of the index (dense encoders and BM25 skip its own entry) and
  out of the classifiers' training (k-fold: each fold's questions are scored by classifiers fitted
  without them), so its article must be found through the article's other entries, as a new
  customer's wording would be. Not its whole article: that would be the next case.
- Unsupported: the same question with its whole article taken away (the article's scores removed,
  the classifiers' probabilities renormalised over the other articles). It is an in-domain question
  the knowledge base cannot answer, the hardest kind of question to hand off honestly.

Titles are not used as questions: every body chunk starts with its article's title, so a title
finds its article through those chunks however badly a customer's wording would.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .confidence import CLARIFY_OPTIONS, MAX_HANDOFF, Calibration, GroupModel, features, fit_group, word_count
from .fusion import native_mask
from .hybrid import CLASSIFIERS, ArticleClassifier, HybridScorer, lang_group, training_rows

MIN_QUESTIONS = 20  # fewer "also asked as" questions than this: too few to calibrate on
REFIT_ITERATIONS = 100


def pseudo_questions(entry_kinds: Sequence[str], entry_article: Sequence[int], max_questions: int = 1500,
                     seed: int = 0) -> np.ndarray:
    """Indices of the "question" entries to calibrate on: at most ``max_questions``, taken round-robin
    over the articles (seeded) so that articles with many questions do not dominate, and only from
    articles that keep at least one other entry when the question is left out."""
    ea = np.asarray(entry_article)
    counts = np.bincount(ea) if len(ea) else np.zeros(0, int)
    rng = np.random.default_rng(seed)
    per_article: dict[int, list[int]] = {}
    for i in rng.permutation(len(ea)):
        if entry_kinds[i] == "question" and counts[ea[i]] > 1:
            per_article.setdefault(int(ea[i]), []).append(int(i))
    picked: list[int] = []
    queues = [per_article[a] for a in sorted(per_article)]
    while queues and len(picked) < max_questions:
        for q in queues:
            if q and len(picked) < max_questions:
                picked.append(q.pop())
        queues = [q for q in queues if q]
    return np.array(sorted(picked), dtype=np.int64)


def heldout_scores(scorer: HybridScorer, idx: np.ndarray, entry_texts: Sequence[str],
                   entry_langs: Sequence[str | None], canonical: str | None, classifier_C: float,
                   folds: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Every system's article scores (len(idx) x articles) for the entries ``idx`` used as questions,
    each left out of the index and of the classifiers' training (see the module docstring)."""
    idx = np.asarray(idx, dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for name, vecs in scorer.entry_vectors.items():
        s = np.empty((len(idx), scorer.n_articles), dtype=np.float32)
        for start in range(0, len(idx), 256):  # a block of questions at a time: bounded memory
            block = idx[start:start + 256]
            sim = vecs[block] @ vecs.T
            sim[np.arange(len(block)), block] = -np.inf
            s[start:start + len(block)] = scorer.amap.max(sim)
        out[name] = np.where(np.isfinite(s), s, -1.0)
    if scorer.bm25 is not None:
        b = np.zeros((len(idx), scorer.n_articles), dtype=np.float32)
        for j, i in enumerate(idx.tolist()):
            e = scorer.bm25.scores(entry_texts[i], entry_langs[i], normalise=True)
            e[i] = 0.0
            b[j] = scorer.amap.max(e, fill=0.0)
        out["bm25"] = b
    fold_of = np.random.default_rng(seed).permutation(len(idx)) % max(1, folds)
    ea = np.asarray(scorer._entry_article)
    for name, clf in scorer.classifiers.items():
        inputs, which = CLASSIFIERS[name]
        train = training_rows(scorer._entry_article, entry_langs, which, canonical)
        X_all = np.hstack([scorer.entry_vectors[n] for n in inputs])
        probs = np.zeros((len(idx), scorer.n_articles), dtype=np.float32)
        for k in range(max(1, folds)):
            in_fold = fold_of == k
            if not in_fold.any():
                continue
            keep = np.setdiff1d(train, idx[in_fold], assume_unique=False)
            # warm-started from the classifier of every entry, which differs by a few entries only
            model = ArticleClassifier(C=classifier_C, max_iter=REFIT_ITERATIONS).fit(
                X_all[keep], ea[keep], scorer.n_articles, init=(clf.coef, clf.intercept))
            probs[in_fold] = model.predict_proba(X_all[idx[in_fold]])
        out[name] = probs
    return out


def gold_matrix(gold: Sequence, n_articles: int) -> np.ndarray:
    """questions x articles, True for each question's right articles (a position, a list of
    positions, or -1 / None / [] for a question the knowledge base cannot answer)."""
    m = np.zeros((len(gold), n_articles), dtype=bool)
    for i, g in enumerate(gold):
        for a in ([g] if np.isscalar(g) or g is None else g):
            if a is not None and a >= 0:
                m[i, a] = True
    return m


def without_gold(scores: Mapping[str, np.ndarray], gold: np.ndarray) -> dict[str, np.ndarray]:
    """The same questions against the knowledge base without their right articles (``gold``: a
    gold_matrix): their scores become the lowest possible, and the classifiers' probabilities are
    renormalised over the others."""
    out = {}
    for name, s in scores.items():
        s = np.array(s, dtype=np.float32, copy=True)
        if name in CLASSIFIERS:
            s[gold] = 0.0
            s /= np.maximum(s.sum(1, keepdims=True), 1e-12)
        else:
            s[gold] = 0.0 if name == "bm25" else -1.0
        out[name] = s
    return out


# ---- calibration sets per language group ---------------------------------------------------------
MIN_LABELLED = 30  # in-scope labelled questions about this knowledge base's articles needed to use them


def _stack(per_question: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {n: np.stack([p[n] for p in per_question]) for n in per_question[0]}


def _group_rows(scorer: HybridScorer, group: str, scores: Mapping[str, np.ndarray], gold: np.ndarray,
                langs: Sequence[str | None], n_words: np.ndarray, units: np.ndarray, proxy: bool = False
                ) -> Calibration:
    """Features of questions in one language group (``gold``: their gold_matrix): as they are and,
    for the in-scope ones, a second time without their article. ``proxy``: questions of another
    language group standing in for this one's (e.g. English questions for German, Turkish, ...
    questions to an English-only knowledge base): no word is shared with any article, so BM25 is
    silent and every article is scored by the cross-lingual systems."""
    cfg = scorer.configs.get(group) or scorer.configs["en"]
    if proxy:
        scores = {n: (np.zeros_like(s) if n == "bm25" else s) for n, s in scores.items()}
        native = np.zeros((len(gold), scorer.n_articles), dtype=bool)
    else:
        native = native_mask(scorer._entry_article, scorer._entry_langs, scorer.n_articles, list(langs)) \
            if scorer._entry_langs is not None else None
    F, fused, names = features(scores, cfg, native, n_words)
    order = np.argsort(-fused, axis=1, kind="stable")[:, :CLARIFY_OPTIONS]
    ins = gold.any(1)
    top1 = np.take_along_axis(gold, order[:, :1], 1)[:, 0]
    top3 = np.take_along_axis(gold, order, 1).any(1)
    keys = np.array([(lang or "").split("-")[0].lower() for lang in langs])
    parts = [(F, top1, top3, ~ins, units, keys, n_words, np.zeros(len(F), dtype=bool))]
    if ins.any():
        sub = {n: s[ins] for n, s in scores.items()}
        F2, _, _ = features(without_gold(sub, gold[ins]), cfg, native[ins] if native is not None else None,
                            n_words[ins])
        none = np.zeros(int(ins.sum()), dtype=bool)
        parts.append((F2, none, none, ~none, units[ins], keys[ins], n_words[ins], ~none))
    joined = [np.concatenate([p[k] for p in parts]) for k in range(8)]
    return Calibration(joined[0], names, *joined[1:])


def calibration_sets(scorer: HybridScorer, scores: Mapping[str, np.ndarray], gold: Sequence,
                     langs: Sequence[str | None], texts: Sequence[str]) -> dict[str, Calibration]:
    """One Calibration per language group of the scorer (``gold``: each question's right article
    positions, see gold_matrix). A group without questions of its own is calibrated on the other
    questions as proxies (see ``_group_rows``)."""
    gold = gold_matrix(gold, scorer.n_articles)
    n_words = np.array([word_count(t) for t in texts])
    units = np.arange(len(gold))
    groups = np.array([lang_group(lang) for lang in langs])
    out = {}
    for group in scorer.configs:
        mine = groups == group
        rows = mine if mine.sum() >= MIN_QUESTIONS else np.ones(len(gold), dtype=bool)
        sub = {n: s[rows] for n, s in scores.items()}
        out[group] = _group_rows(scorer, group, sub, gold[rows], [langs[i] for i in np.flatnonzero(rows)],
                                 n_words[rows], units[rows], proxy=not mine.any() or mine.sum() < MIN_QUESTIONS)
    return out


def fit_confidence(sets: Mapping[str, Calibration], source: str, max_handoff: float = MAX_HANDOFF
                   ) -> tuple[dict[str, GroupModel], dict]:
    """The confidence models per language group and what their thresholds did on questions the
    models had not seen (knowledge_base.confidence.fit_group)."""
    models, report = {}, {}
    for group, cal in sets.items():
        model, out = fit_group(cal, source=source, max_handoff=max_handoff)
        models[group] = model
        per_lang, topics = out.pop("per_lang"), out.pop("topics", {})
        report[group] = {"questions": int((~cal.unsupported).sum()), "unsupported": int(cal.unsupported.sum()),
                         **{k: round(v, 4) for k, v in out.items()},
                         "answer": model.answer, "margin": model.margin, "clarify": model.clarify,
                         "topic_thresholds": list(model.topic) if model.topic else None,
                         "topics": {k: round(v, 4) for k, v in topics.items()},
                         "per_lang": {lang: {k: round(v, 4) for k, v in o.items()} for lang, o in per_lang.items()}}
    return models, report
