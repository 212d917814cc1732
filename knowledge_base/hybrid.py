"""The per-article classifier over entry embeddings and the recommended retrieval design built from
knowledge_base/fusion.py's pieces (measurements: bench/retrieval_eval.py, bench/results/retrieval.json).

The recommended design, packaged as ``HybridScorer`` (articles = translation groups)::

    scorer = HybridScorer.fit(entry_group, n_groups, {"use": V_use, "minilm": V_minilm},
                              entry_texts, entry_langs,
                              calibration=[(text, lang, {"use": q_use, "minilm": q_minilm}), ...])
    state = scorer.state_dict()                       # JSON: BM25, classifier, weights, stats
    scorer = HybridScorer.from_state(state, entry_group, {"use": V_use, "minilm": V_minilm}, entry_langs)

    need = scorer.encoders_needed(lang)               # ["use"] for German, ["use", "minilm"] for English
    qv = {name: encoders[name].encode([text])[0] for name in need}
    groups, scores = scorer.rank(text, lang, qv)      # best first (fused scores)

Two per-article classifiers: ``clf`` over both encoders' vectors of every entry (English questions)
and ``clfx`` over the cross-lingual encoder's vectors of the entries in the knowledge base's
canonical language only, so that it has no notion of language: trained on every entry, a
classifier learns that Turkish text belongs to the articles that have a Turkish translation and
pulls a Turkish question about an English-only article to the wrong one (measured on the sample
help centre's validation questions: Turkish top-1 .651 with every entry, .814 with the English
entries). How sure the ranking is, is not the fused top score alone: knowledge_base/confidence.py.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from .fusion import ArticleMap, FusionConfig, global_stats, native_mask


# ---- per-article classifier ---------------------------------------------------------------------
class ArticleClassifier:
    """Multinomial logistic regression from an entry's embedding to its article.

    Trained on the embeddings of every article's entries (example questions, title, chunks);
    ``predict_proba`` gives one probability per article for a query embedding.
    """

    def __init__(self, C: float = 10.0, max_iter: int = 300):
        self.C = float(C)
        self.max_iter = int(max_iter)
        self.coef: np.ndarray | None = None  # (n_articles, dim)
        self.intercept: np.ndarray | None = None
        self.n_articles = 0

    def fit(self, X: np.ndarray, y: Sequence[int], n_articles: int,
            init: tuple[np.ndarray, np.ndarray] | None = None) -> "ArticleClassifier":
        """``init``: starting (coef, intercept) per article, e.g. the previous snapshot's (a publish
        changes few articles, so the optimiser starts near the optimum: about half the time)."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y)
        self.n_articles = int(n_articles)
        classes = np.unique(y)
        coef = np.zeros((n_articles, X.shape[1]), dtype=np.float32)
        inter = np.full(n_articles, -1e4, dtype=np.float32)  # articles without entries: never chosen
        if len(classes) == 1:
            inter[classes[0]] = 0.0
        else:
            lr = LogisticRegression(C=self.C, max_iter=self.max_iter, warm_start=init is not None)
            if init is not None and init[0].shape == (n_articles, X.shape[1]):
                lr.coef_ = np.asarray(init[0], dtype=np.float64)[classes]
                lr.intercept_ = np.asarray(init[1], dtype=np.float64)[classes]
            lr.fit(X, y)
            coef[lr.classes_] = lr.coef_.astype(np.float32)
            inter[lr.classes_] = lr.intercept_.astype(np.float32)
        self.coef, self.intercept = coef, inter
        return self

    def decision_function(self, Q: np.ndarray) -> np.ndarray:
        assert self.coef is not None, "fit first"
        return np.atleast_2d(Q).astype(np.float32) @ self.coef.T + self.intercept

    def predict_proba(self, Q: np.ndarray) -> np.ndarray:
        z = self.decision_function(Q)
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        return p[0] if np.asarray(Q).ndim == 1 else p

    def to_dict(self) -> dict:
        assert self.coef is not None
        return {"C": self.C, "n_articles": self.n_articles, "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "ArticleClassifier":
        c = cls(C=d["C"])
        c.n_articles = int(d["n_articles"])
        c.coef = np.asarray(d["coef"], dtype=np.float32)
        c.intercept = np.asarray(d["intercept"], dtype=np.float32)
        return c


# The per-article classifiers: name -> (encoder vectors it reads, which entries it is trained on).
# "canonical": the entries in the knowledge base's canonical language (an article without any:
# all of its entries), so the classifier cannot tell languages apart (see the module docstring).
CLASSIFIERS: dict[str, tuple[tuple[str, ...], str]] = {
    "clf": (("use", "minilm"), "all"),
    "clfx": (("use",), "canonical"),
}


def training_rows(entry_article: Sequence[int], entry_langs: Sequence[str | None], which: str,
                  canonical: str | None) -> np.ndarray:
    """Indices of the entries a classifier is trained on (``which``: "all" or "canonical")."""
    n = len(entry_article)
    if which == "all" or not canonical:
        return np.arange(n)
    key = canonical.split("-")[0].lower()
    is_canon = np.array([(lang or "").split("-")[0].lower() == key for lang in entry_langs], dtype=bool)
    ea = np.asarray(entry_article)
    has_canon = np.zeros(int(ea.max()) + 1 if n else 0, dtype=bool)
    has_canon[ea[is_canon]] = True
    return np.flatnonzero(is_canon | ~has_canon[ea])


# ---- the recommended design, packaged for a Searcher --------------------------------------------
def lang_group(lang: str | None) -> str:
    """Weights are chosen per language group: English questions, or any other language."""
    return "en" if (lang or "en").split("-")[0].lower() == "en" else "other"


# Fixed fusion weights of the recommended design ("global" normalisation + language fill), chosen
# on the pooled validation questions of every data set in bench/retrieval_eval.py (never on test
# questions); the script reports when its choice differs from these constants.
# Other languages never weigh the English-only encoder or the classifier that reads it: they would
# cost a non-English question ~13 of its ~15 ms.
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {  # without the classifiers
    "en": {"use": 0.1, "minilm": 0.7, "bm25": 0.2},
    "other": {"use": 0.7, "minilm": 0.0, "bm25": 0.3},
}
DEFAULT_WEIGHTS_CLF: dict[str, dict[str, float]] = {  # with the per-article classifiers (recommended)
    "en": {"clf": 0.4, "clfx": 0.0, "use": 0.0, "minilm": 0.5, "bm25": 0.1},
    "other": {"clf": 0.0, "clfx": 0.4, "use": 0.3, "minilm": 0.0, "bm25": 0.3},
}
DEFAULT_CLASSIFIER_C = 10.0


class HybridScorer:
    """Scores every article for one question with the recommended design: dense encoders
    (nearest entry per article) + BM25 over the entries (+ optionally the per-article classifiers),
    each put on a global scale and summed with language-group weights.

    The fused scores rank; how sure the ranking is comes from knowledge_base.confidence, which
    reads every system's scores, not only the fused top one.
    """

    def __init__(self, entry_article: Sequence[int], n_articles: int, entry_vectors: Mapping[str, np.ndarray],
                 bm25, configs: Mapping[str, FusionConfig],
                 classifiers: Mapping[str, ArticleClassifier] | None = None,
                 entry_langs: Sequence[str | None] | None = None):
        self.amap = ArticleMap(entry_article, n_articles)
        self._entry_article = list(entry_article)
        self._entry_langs = list(entry_langs) if entry_langs is not None else None
        self._native: dict[str, np.ndarray] = {}
        self.n_articles = int(n_articles)
        self.entry_vectors = dict(entry_vectors)
        self.bm25 = bm25
        self.configs = dict(configs)
        self.classifiers = {n: c for n, c in (classifiers or {}).items() if c is not None}

    @property
    def stats(self) -> dict[str, tuple[float, float]]:
        return next(iter(self.configs.values())).stats

    def config_for(self, lang: str | None) -> FusionConfig:
        return self.configs.get(lang_group(lang)) or self.configs["en"]

    def native(self, lang: str | None) -> np.ndarray | None:
        """True for the articles that have an entry in ``lang`` (None: no language information)."""
        if not lang or self._entry_langs is None:
            return None
        key = lang.split("-")[0].lower()
        if key not in self._native:
            self._native[key] = native_mask(self._entry_article, self._entry_langs, self.n_articles, [key])[0]
        return self._native[key]

    def _weights(self, lang: str | None) -> dict[str, float]:
        cfg = self.config_for(lang)
        w = dict(cfg.weights)
        nat = self.native(lang)
        if cfg.fill_from and nat is not None and not nat.all() and any(w.get(n) for n in cfg.monolingual):
            w.setdefault(cfg.fill_from, 0.0)
            w[cfg.fill_from] = w[cfg.fill_from] or 1e-9  # needed to fill the non-native articles
        return w

    def encoders_needed(self, lang: str | None, every_system: bool = False) -> list[str]:
        """Which query embeddings the caller must compute for a question in ``lang`` (all of them
        with ``every_system``, e.g. for calibration questions scored for both language groups)."""
        if every_system:
            return list(self.entry_vectors)
        w = self._weights(lang)
        need = [n for n in self.entry_vectors if w.get(n)]
        for name, clf in self.classifiers.items():
            if w.get(name):
                need += [n for n in CLASSIFIERS[name][0] if n not in need]
        return need

    def system_scores(self, text: str, lang: str | None, query_vecs: Mapping[str, np.ndarray],
                      only_needed: bool = True) -> dict[str, np.ndarray]:
        w = self._weights(lang)
        out: dict[str, np.ndarray] = {}
        for name, vecs in self.entry_vectors.items():
            if (w.get(name) or not only_needed) and name in query_vecs:
                out[name] = self.amap.max(vecs @ np.asarray(query_vecs[name], dtype=np.float32).reshape(-1))
        if self.bm25 is not None and (w.get("bm25") or not only_needed):
            out["bm25"] = self.amap.max(self.bm25.scores(text, lang, normalise=True), fill=0.0)
        for name, clf in self.classifiers.items():
            inputs = CLASSIFIERS[name][0]
            if (w.get(name) or not only_needed) and all(n in query_vecs for n in inputs):
                x = np.concatenate([np.asarray(query_vecs[n], dtype=np.float32).reshape(-1) for n in inputs])
                out[name] = clf.predict_proba(x)
        return out

    def fuse(self, system_scores: Mapping[str, np.ndarray], lang: str | None) -> np.ndarray:
        return self.config_for(lang).fuse(system_scores, self.native(lang))

    def scores(self, text: str, lang: str | None, query_vecs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One fused score per article (higher is better)."""
        return self.fuse(self.system_scores(text, lang, query_vecs), lang)

    def rank(self, text: str, lang: str | None, query_vecs: Mapping[str, np.ndarray], k: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Article positions best first, with their fused scores."""
        s = self.scores(text, lang, query_vecs)
        order = np.argsort(-s, kind="stable")[: k or len(s)]
        return order, s[order]

    @classmethod
    def fit(cls, entry_article: Sequence[int], n_articles: int, entry_vectors: Mapping[str, np.ndarray],
            entry_texts: Sequence[str], entry_langs: Sequence[str | None],
            calibration: Sequence[tuple[str, str | None, Mapping[str, np.ndarray]]] = (),
            weights: Mapping[str, Mapping[str, float]] | None = None, classifier: bool = True,
            classifier_C: float = DEFAULT_CLASSIFIER_C, bm25_params: Mapping | None = None,
            stats: Mapping[str, tuple[float, float]] | None = None,
            classifier_init: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
            canonical: str | None = "en", heldout: "Callable[[HybridScorer], dict[str, np.ndarray]] | None" = None
            ) -> "HybridScorer":
        """Build BM25 and the classifiers, then the global stats: ``stats`` as given (a previous
        fit's, e.g. on an editor's publish: fast, and the calibrated decision stays on the same
        scale), else from the calibration questions ``(text, lang, query vectors)`` (labels are not
        needed), else from ``heldout(scorer)``: system scores of entries used as questions with
        themselves left out of the index and of the classifiers' training (knowledge_base.calibration).
        A classifier scored on its own training entries is sure of every one of them, which made
        its scale ten times too narrow. ``weights`` default to DEFAULT_WEIGHTS_CLF / DEFAULT_WEIGHTS."""
        from .lexical import BM25Index

        weights = weights or (DEFAULT_WEIGHTS_CLF if classifier else DEFAULT_WEIGHTS)
        bm25 = BM25Index(**(bm25_params or {})).build(list(entry_texts), list(entry_langs))
        classifiers = {}
        if classifier:
            for name, (inputs, which) in CLASSIFIERS.items():
                if not any(w.get(name) for w in weights.values()):
                    continue
                rows = training_rows(entry_article, entry_langs, which, canonical)
                X = np.hstack([entry_vectors[n][rows] for n in inputs])
                init = (classifier_init or {}).get(name)
                classifiers[name] = ArticleClassifier(C=classifier_C).fit(
                    X, np.asarray(entry_article)[rows], n_articles, init=init)
        scorer = cls(entry_article, n_articles, entry_vectors, bm25,
                     {g: FusionConfig(dict(w), "global", {}) for g, w in weights.items()}, classifiers,
                     entry_langs=entry_langs)
        if stats is not None:
            stats = {n: (float(v[0]), float(v[1])) for n, v in stats.items()}
        elif calibration:
            per = [scorer.system_scores(t, lang, qv, only_needed=False) for t, lang, qv in calibration]
            stats = global_stats({n: np.stack([p[n] for p in per]) for n in per[0]})
        elif heldout is not None:
            stats = global_stats(heldout(scorer))
        else:
            raise ValueError("HybridScorer.fit needs stats, calibration questions or held-out entries")
        for cfg in scorer.configs.values():
            cfg.stats = stats
        return scorer

    def state_dict(self) -> dict:
        """JSON-serialisable state apart from the entry vectors (which a snapshot already stores)."""
        return {"configs": {g: c.to_dict() for g, c in self.configs.items()},
                "bm25": self.bm25.to_dict() if self.bm25 is not None else None,
                "classifiers": {n: c.to_dict() for n, c in self.classifiers.items()},
                "n_articles": self.n_articles}

    @classmethod
    def from_state(cls, state: dict, entry_article: Sequence[int], entry_vectors: Mapping[str, np.ndarray],
                   entry_langs: Sequence[str | None] | None = None) -> "HybridScorer":
        from .lexical import BM25Index

        return cls(entry_article, state["n_articles"], entry_vectors,
                   BM25Index.from_dict(state["bm25"]) if state.get("bm25") else None,
                   {g: FusionConfig.from_dict(c) for g, c in state["configs"].items()},
                   {n: ArticleClassifier.from_dict(c) for n, c in (state.get("classifiers") or {}).items()},
                   entry_langs)
