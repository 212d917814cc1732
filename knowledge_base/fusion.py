"""Combining rankers: per-article scores from entry scores, score normalisation, fusion, and a
per-article classifier over entry embeddings.

Everything works on dense article-score arrays: shape ``(n_articles,)`` for one query or
``(n_queries, n_articles)`` for many; an article's score from one system is the best score of
its entries (``ArticleMap.max``). The measurements behind the defaults are in
bench/retrieval_eval.py and bench/results/retrieval.json.

The recommended design, packaged as ``HybridScorer`` (articles = translation groups)::

    scorer = HybridScorer.fit(entry_group, n_groups, {"use": V_use, "minilm": V_minilm},
                              entry_texts, entry_langs,
                              calibration=[(text, lang, {"use": q_use, "minilm": q_minilm}), ...])
    state = scorer.state_dict()                       # JSON: BM25, classifier, weights, stats
    scorer = HybridScorer.from_state(state, entry_group, {"use": V_use, "minilm": V_minilm}, entry_langs)

    need = scorer.encoders_needed(lang)               # ["use"] for German, ["use", "minilm"] for English
    qv = {name: encoders[name].encode([text])[0] for name in need}
    groups, scores = scorer.rank(text, lang, qv)      # best first; scores[0] drives answer/clarify/hand-off
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Callable, Mapping, Sequence

import numpy as np

METHODS = ("global", "zlist", "minmax", "rrf", "raw")


# ---- entry scores -> article scores -------------------------------------------------------------
class ArticleMap:
    """Maps entry positions to article positions; reduces entry scores to article scores (max)."""

    def __init__(self, entry_article: Sequence[int], n_articles: int | None = None):
        ea = np.asarray(entry_article, dtype=np.int64)
        self.n_articles = int(n_articles if n_articles is not None else (ea.max() + 1 if len(ea) else 0))
        self.order = np.argsort(ea, kind="stable")
        sorted_a = ea[self.order]
        present = np.unique(sorted_a)
        self.starts = np.searchsorted(sorted_a, present)
        self.present = present

    def max(self, entry_scores: np.ndarray, fill: float = -1.0) -> np.ndarray:
        """Best entry score per article; articles without entries get ``fill``."""
        s = np.asarray(entry_scores)
        squeeze = s.ndim == 1
        s2 = s.reshape(1, -1) if squeeze else s
        out = np.full((s2.shape[0], self.n_articles), fill, dtype=np.float32)
        if len(self.present):
            out[:, self.present] = np.maximum.reduceat(s2[:, self.order], self.starts, axis=1)
        return out[0] if squeeze else out


def article_max(entry_scores: np.ndarray, entry_article: Sequence[int], n_articles: int,
                fill: float = -1.0) -> np.ndarray:
    return ArticleMap(entry_article, n_articles).max(entry_scores, fill)


def dense_article_scores(query_vecs: np.ndarray, entry_vecs: np.ndarray, amap: ArticleMap,
                         batch: int = 512) -> np.ndarray:
    """Exact cosine (inner product of normalised rows) article scores, queries x articles."""
    q = np.atleast_2d(query_vecs).astype(np.float32)
    out = np.empty((len(q), amap.n_articles), dtype=np.float32)
    for i in range(0, len(q), batch):
        out[i:i + batch] = amap.max(q[i:i + batch] @ entry_vecs.T)
    return out


# ---- normalisation and fusion -------------------------------------------------------------------
def _2d(s: np.ndarray) -> tuple[np.ndarray, bool]:
    s = np.asarray(s, dtype=np.float32)
    return (s.reshape(1, -1), True) if s.ndim == 1 else (s, False)


def candidate_mask(scores: Mapping[str, np.ndarray], k: int) -> np.ndarray:
    """Union of every system's top-``k`` articles (boolean, queries x articles)."""
    mask = None
    for s in scores.values():
        s2, _ = _2d(s)
        kk = min(k, s2.shape[1])
        top = np.argpartition(-s2, kk - 1, axis=1)[:, :kk]
        m = np.zeros(s2.shape, dtype=bool)
        np.put_along_axis(m, top, True, axis=1)
        mask = m if mask is None else (mask | m)
    return mask


def normalise_list(s: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """Per-query normalisation with statistics over the candidate list (``mask``)."""
    s2, squeeze = _2d(s)
    cnt = np.maximum(mask.sum(1, keepdims=True), 1)
    if method == "zlist":
        mean = np.where(mask, s2, 0).sum(1, keepdims=True) / cnt
        var = np.where(mask, (s2 - mean) ** 2, 0).sum(1, keepdims=True) / cnt
        out = (s2 - mean) / np.sqrt(var + 1e-12)
    elif method == "minmax":
        lo = np.where(mask, s2, np.inf).min(1, keepdims=True)
        hi = np.where(mask, s2, -np.inf).max(1, keepdims=True)
        out = (s2 - lo) / np.maximum(hi - lo, 1e-9)
    else:
        raise ValueError(method)
    return out[0] if squeeze else out


def rrf(scores: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None, k: float = 60.0
        ) -> np.ndarray:
    """Reciprocal rank fusion: sum of w / (k + rank), rank 1 = best of that system."""
    total = None
    for name, s in scores.items():
        w = 1.0 if weights is None else float(weights.get(name, 0.0))
        if w == 0:
            continue
        s2, squeeze = _2d(s)
        order = np.argsort(-s2, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, s2.shape[1] + 1)[None, :].repeat(len(s2), 0), axis=1)
        part = w / (k + ranks.astype(np.float32))
        total = part if total is None else total + part
    if total is None:
        raise ValueError("rrf needs at least one system with a non-zero weight")
    return total[0] if squeeze else total


def global_stats(scores: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Per-system (mean, std) of the scores of the best 5 articles over many queries.

    Estimated on validation questions (no labels needed); used to put systems on one scale
    while keeping absolute levels, so the fused top score still says how good the match is.
    """
    out = {}
    for name, s in scores.items():
        s2, _ = _2d(s)
        kk = min(5, s2.shape[1])
        top = -np.partition(-s2, kk - 1, axis=1)[:, :kk]
        out[name] = (float(top.mean()), float(top.std() + 1e-9))
    return out


@dataclass
class FusionConfig:
    """How to turn several systems' article scores into one.

    method: ``global`` (affine per system with fixed stats, then weighted sum: keeps absolute
    levels, so the top score can drive answer/hand-off), ``zlist`` / ``minmax`` (per query over the
    candidate list), ``rrf`` (reciprocal rank fusion), ``raw`` (weighted sum of raw scores).

    Language fill (``global`` only): BM25, the English-only encoder and the classifier cannot
    judge an article that has no entry in the question's language (a German question against an
    English-only article: BM25 scores 0). When ``fuse`` gets ``native`` (True where the article has
    an entry in the question's language), those systems' normalised scores of non-native
    articles are replaced by the ``fill_from`` system's (the cross-lingual encoder), so such
    articles are judged by the cross-lingual encoder alone instead of being pushed down.
    """
    weights: dict[str, float]
    method: str = "global"
    stats: dict[str, tuple[float, float]] = field(default_factory=dict)
    candidates: int = 20
    rrf_k: float = 60.0
    fill_from: str | None = "use"
    monolingual: tuple[str, ...] = ("minilm", "bm25", "clf")

    def fuse(self, scores: Mapping[str, np.ndarray], native: np.ndarray | None = None) -> np.ndarray:
        used = {n: scores[n] for n, w in self.weights.items() if w}
        if not used:
            raise ValueError("fusion needs at least one system with a non-zero weight")
        if self.method == "rrf":
            return rrf(used, self.weights, self.rrf_k)
        if self.method in ("zlist", "minmax"):
            mask = candidate_mask(used, self.candidates)
            parts = {n: normalise_list(s, mask, self.method) for n, s in used.items()}
        elif self.method == "global":
            parts = {}
            for n, s in used.items():
                mu, sd = self.stats[n]
                parts[n] = (np.asarray(s, dtype=np.float32) - mu) / sd
            fill = self.fill_from
            if native is not None and fill and any(n in self.monolingual for n in parts) \
                    and not np.all(native) and fill in scores:
                mu, sd = self.stats[fill]
                base = (np.asarray(scores[fill], dtype=np.float32) - mu) / sd
                for n in parts:
                    if n in self.monolingual:
                        parts[n] = np.where(native, parts[n], base)
        elif self.method == "raw":
            parts = {n: np.asarray(s, dtype=np.float32) for n, s in used.items()}
        else:
            raise ValueError(f"unknown fusion method {self.method!r}: one of {', '.join(METHODS)}")
        total = None
        for n, p in parts.items():
            total = self.weights[n] * p if total is None else total + self.weights[n] * p
        return total

    def to_dict(self) -> dict:
        return {"weights": dict(self.weights), "method": self.method,
                "stats": {k: list(v) for k, v in self.stats.items()},
                "candidates": self.candidates, "rrf_k": self.rrf_k,
                "fill_from": self.fill_from, "monolingual": list(self.monolingual)}

    @classmethod
    def from_dict(cls, d: dict) -> "FusionConfig":
        return cls(weights=dict(d["weights"]), method=d.get("method", "global"),
                   stats={k: (float(v[0]), float(v[1])) for k, v in (d.get("stats") or {}).items()},
                   candidates=int(d.get("candidates", 20)), rrf_k=float(d.get("rrf_k", 60.0)),
                   fill_from=d.get("fill_from", "use"),
                   monolingual=tuple(d.get("monolingual", ("minilm", "bm25", "clf"))))


def native_mask(entry_article: Sequence[int], entry_langs: Sequence[str | None], n_articles: int,
                query_langs: Sequence[str | None]) -> np.ndarray:
    """queries x articles: True where the article has an entry in the question's language
    (questions without a language count every article as native)."""
    by_lang: dict[str, np.ndarray] = {}
    for a, lang in zip(entry_article, entry_langs):
        key = (lang or "").split("-")[0].lower()
        by_lang.setdefault(key, np.zeros(n_articles, dtype=bool))[a] = True
    out = np.ones((len(query_langs), n_articles), dtype=bool)
    for i, lang in enumerate(query_langs):
        if lang:
            out[i] = by_lang.get(lang.split("-")[0].lower(), np.zeros(n_articles, dtype=bool))
    return out


# ---- choosing weights on validation questions ---------------------------------------------------
def gold_mask(gold: Sequence[Sequence[int] | None], n_articles: int) -> np.ndarray:
    """Boolean queries x articles matrix of the gold articles (an all-False row: out of scope)."""
    m = np.zeros((len(gold), n_articles), dtype=bool)
    for i, g in enumerate(gold):
        if g:
            m[i, list(g)] = True
    return m


def gold_ranks(fused: np.ndarray, gold: "Sequence[Sequence[int] | None] | np.ndarray") -> np.ndarray:
    """1-based rank of the best-ranked gold article per query (0 for out-of-scope queries).

    ``gold`` is a list of gold article positions per query, or a ``gold_mask``. Ties are broken
    pessimistically (a non-gold article with the same score ranks before gold), so a constant
    scorer does not look good.
    """
    f2, _ = _2d(fused)
    g = gold if isinstance(gold, np.ndarray) and gold.dtype == bool else gold_mask(gold, f2.shape[1])
    gs = np.where(g, f2, -np.inf).max(1)
    ranks = 1 + ((f2 >= gs[:, None]) & ~g).sum(1)
    ranks[~g.any(1)] = 0
    return ranks


def ranking_objective(ranks: np.ndarray) -> float:
    """Mean of top-1 accuracy and MRR over in-scope queries (rank 0 = out of scope, skipped)."""
    r = ranks[ranks > 0]
    if not len(r):
        return 0.0
    return float(0.5 * (r == 1).mean() + 0.5 * (1.0 / r).mean())


def weight_grid(names: Sequence[str], step: float = 0.1) -> list[dict[str, float]]:
    """All weightings of ``names`` on a simplex grid (weights >= 0 summing to 1)."""
    n = int(round(1 / step))
    out = []
    for combo in product(range(n + 1), repeat=len(names)):
        if sum(combo) == n:
            out.append({nm: c / n for nm, c in zip(names, combo)})
    return out


def choose_config(val_scores: Mapping[str, np.ndarray], gold: Sequence[Sequence[int] | None],
                  names: Sequence[str], method: str = "global", step: float = 0.1,
                  objective: Callable[[np.ndarray], float] = ranking_objective,
                  candidates: int = 20, rrf_ks: Sequence[float] = (60.0,), native: np.ndarray | None = None
                  ) -> tuple[FusionConfig, float]:
    """Grid-search the weights (and for rrf, k) maximising ``objective`` on validation questions."""
    # stats of the fill system too (the language fill needs it even when its weight is 0)
    stat_names = set(names) | ({"use"} & set(val_scores))
    stats = global_stats({n: val_scores[n] for n in stat_names}) if method == "global" else {}
    any_scores = next(iter(val_scores.values()))
    gmask = gold if isinstance(gold, np.ndarray) else gold_mask(gold, np.atleast_2d(any_scores).shape[1])
    best, best_val = None, -1.0
    ks = rrf_ks if method == "rrf" else (60.0,)
    for k in ks:
        for w in weight_grid(names, step):
            cfg = FusionConfig(w, method, stats, candidates, k)
            val = objective(gold_ranks(cfg.fuse(val_scores, native), gmask))
            if val > best_val + 1e-12:
                best, best_val = cfg, val
    assert best is not None
    return best, best_val


def clarify_margins(rankings: Sequence[tuple[Sequence, Sequence[float]]],
                    quantiles: Sequence[float] = (0.05, 0.1, 0.2, 0.3)) -> tuple[float, ...]:
    """Candidate clarify margins on a scorer's own scale, for knowledge_base.evaluate.calibrate:
    0 and quantiles of the top-1 / top-2 score gap over the calibration questions' rankings
    (calibrate's default margins, 0 to 0.05, only suit raw cosine scores)."""
    gaps = np.array([float(r[1][0]) - float(r[1][1]) for r in rankings if len(r[1]) > 1])
    if not len(gaps):
        return (0.0,)
    return (0.0,) + tuple(float(round(np.quantile(gaps, q), 6)) for q in quantiles)


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


# ---- the recommended design, packaged for a Searcher --------------------------------------------
def lang_group(lang: str | None) -> str:
    """Weights are chosen per language group: English questions, or any other language."""
    return "en" if (lang or "en").split("-")[0].lower() == "en" else "other"


# Fixed fusion weights of the recommended design ("global" normalisation + language fill), chosen
# on the pooled validation questions of every data set in bench/retrieval_eval.py (never on test
# questions); the script reports when its choice differs from these constants.
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {  # without the classifier
    "en": {"use": 0.3, "minilm": 0.5, "bm25": 0.2},
    "other": {"use": 0.7, "minilm": 0.0, "bm25": 0.3},
}
DEFAULT_WEIGHTS_CLF: dict[str, dict[str, float]] = {  # with the per-article classifier (recommended)
    "en": {"clf": 0.4, "use": 0.0, "minilm": 0.5, "bm25": 0.1},
    "other": {"clf": 0.0, "use": 0.7, "minilm": 0.0, "bm25": 0.3},
}
DEFAULT_CLASSIFIER_C = 10.0


def stats_from_entries(system_scores: Callable[[int], dict[str, np.ndarray]], entry_article: Sequence[int],
                       candidates: Sequence[int]) -> dict[str, tuple[float, float]]:
    """Label-free global stats when there are no calibration questions: entries used as queries,
    their own article left out (``system_scores(i)`` gives the systems' article scores for entry i)."""
    rows: dict[str, list[np.ndarray]] = {}
    for i in candidates:
        for name, s in system_scores(i).items():
            s = np.array(s, dtype=np.float32)
            s[entry_article[i]] = -np.inf
            rows.setdefault(name, []).append(s)
    # the left-out article gets the lowest finite score, so it never enters the top 5
    return global_stats({n: np.where(np.isinf(m), np.nanmin(np.where(np.isinf(m), np.nan, m)), m)
                         for n, m in ((n, np.stack(v)) for n, v in rows.items())})


class HybridScorer:
    """Scores every article for one question with the recommended design: dense encoders
    (nearest entry per article) + BM25 over the entries (+ optionally the per-article classifier),
    each put on a global scale and summed with language-group weights.

    The fused top score is what the answer / clarify / hand-off decision is calibrated on
    (knowledge_base.evaluate.calibrate over ``rank`` results).
    """

    def __init__(self, entry_article: Sequence[int], n_articles: int, entry_vectors: Mapping[str, np.ndarray],
                 bm25, configs: Mapping[str, FusionConfig], classifier: ArticleClassifier | None = None,
                 classifier_inputs: Sequence[str] = ("use", "minilm"),
                 entry_langs: Sequence[str | None] | None = None):
        self.amap = ArticleMap(entry_article, n_articles)
        self._entry_article = list(entry_article)
        self._entry_langs = list(entry_langs) if entry_langs is not None else None
        self._native: dict[str, np.ndarray] = {}
        self.n_articles = int(n_articles)
        self.entry_vectors = dict(entry_vectors)
        self.bm25 = bm25
        self.configs = dict(configs)
        self.classifier = classifier
        self.classifier_inputs = tuple(classifier_inputs)

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

    def encoders_needed(self, lang: str | None) -> list[str]:
        """Which query embeddings the caller must compute for a question in ``lang``."""
        w = self._weights(lang)
        need = [n for n in self.entry_vectors if w.get(n)]
        if w.get("clf") and self.classifier is not None:
            need += [n for n in self.classifier_inputs if n not in need]
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
        if self.classifier is not None and (w.get("clf") or not only_needed) \
                and all(n in query_vecs for n in self.classifier_inputs):
            x = np.concatenate([np.asarray(query_vecs[n], dtype=np.float32).reshape(-1)
                                for n in self.classifier_inputs])
            out["clf"] = self.classifier.predict_proba(x)
        return out

    def scores(self, text: str, lang: str | None, query_vecs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One fused score per article (higher is better)."""
        return self.config_for(lang).fuse(self.system_scores(text, lang, query_vecs), self.native(lang))

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
            classifier_init: tuple[np.ndarray, np.ndarray] | None = None) -> "HybridScorer":
        """Build BM25 (and the classifier), then the global stats from the calibration questions
        ``(text, lang, query vectors)`` (labels are not needed), or from the entries themselves when
        there are none. ``weights`` default to DEFAULT_WEIGHTS_CLF / DEFAULT_WEIGHTS. Given ``stats``
        (a previous fit's, e.g. on an editor's publish) are kept as they are: fast, and the calibrated
        decision thresholds stay on the same scale."""
        from .lexical import BM25Index

        weights = weights or (DEFAULT_WEIGHTS_CLF if classifier else DEFAULT_WEIGHTS)
        bm25 = BM25Index(**(bm25_params or {})).build(list(entry_texts), list(entry_langs))
        clf = None
        if classifier and any(w.get("clf") for w in weights.values()):
            X = np.hstack([entry_vectors[n] for n in ("use", "minilm") if n in entry_vectors])
            clf = ArticleClassifier(C=classifier_C).fit(X, entry_article, n_articles, init=classifier_init)
        scorer = cls(entry_article, n_articles, entry_vectors, bm25,
                     {g: FusionConfig(dict(w), "global", {}) for g, w in weights.items()}, clf,
                     entry_langs=entry_langs)
        if stats is not None:
            stats = {n: (float(v[0]), float(v[1])) for n, v in stats.items()}
        elif calibration:
            per = [scorer.system_scores(t, lang, qv, only_needed=False) for t, lang, qv in calibration]
            stats = global_stats({n: np.stack([p[n] for p in per]) for n in per[0]})
        else:
            rng = np.random.default_rng(0)
            pick = rng.choice(len(entry_texts), min(300, len(entry_texts)), replace=False)
            stats = stats_from_entries(
                lambda i: scorer.system_scores(entry_texts[i], entry_langs[i],
                                               {n: v[i] for n, v in entry_vectors.items()}, only_needed=False),
                entry_article, pick)
        for cfg in scorer.configs.values():
            cfg.stats = stats
        return scorer

    def state_dict(self) -> dict:
        """JSON-serialisable state apart from the entry vectors (which a snapshot already stores)."""
        return {"configs": {g: c.to_dict() for g, c in self.configs.items()},
                "bm25": self.bm25.to_dict() if self.bm25 is not None else None,
                "classifier": self.classifier.to_dict() if self.classifier is not None else None,
                "classifier_inputs": list(self.classifier_inputs), "n_articles": self.n_articles}

    @classmethod
    def from_state(cls, state: dict, entry_article: Sequence[int], entry_vectors: Mapping[str, np.ndarray],
                   entry_langs: Sequence[str | None] | None = None) -> "HybridScorer":
        from .lexical import BM25Index

        return cls(entry_article, state["n_articles"], entry_vectors,
                   BM25Index.from_dict(state["bm25"]) if state.get("bm25") else None,
                   {g: FusionConfig.from_dict(c) for g, c in state["configs"].items()},
                   ArticleClassifier.from_dict(state["classifier"]) if state.get("classifier") else None,
                   state.get("classifier_inputs", ("use", "minilm")), entry_langs)
