"""Combining rankers: per-article scores from entry scores, score normalisation and fusion, and
choosing fusion weights on validation questions (the per-article classifier and the packaged design,
``HybridScorer``, are in knowledge_base/hybrid.py).

Everything works on dense article-score arrays: shape ``(n_articles,)`` for one query or
``(n_queries, n_articles)`` for many; an article's score from one system is the best score of
its entries (``ArticleMap.max``). The measurements behind the defaults are in
bench/retrieval_eval.py and bench/results/retrieval.json.
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
