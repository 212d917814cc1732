"""Retrieval evaluation, part 2: the systems compared (base scorers, fusions, the classifier) and the
metrics glue (rankings, a vectorised calibrate). See bench/retrieval_eval.py.
"""
from __future__ import annotations

import time

import numpy as np

# eval_data first: it puts the project on sys.path and sets the thread counts
from eval_data import BASE, ENCODERS, EmbeddingCache, KB, Queries, log
from knowledge_base.decision import DecisionPolicy
from knowledge_base.evaluate import Question
from knowledge_base.fusion import (ArticleMap, FusionConfig, choose_config, clarify_margins, dense_article_scores,
                                   global_stats, gold_mask, gold_ranks, native_mask, ranking_objective)
from knowledge_base.hybrid import CLASSIFIERS, DEFAULT_CLASSIFIER_C, ArticleClassifier, lang_group, training_rows
from knowledge_base.lexical import BM25Index, Tokenizer


# ================================================================================================
# Systems
# ================================================================================================
CLF_C = DEFAULT_CLASSIFIER_C
_TOK = {"ngram": 4, "ngram_min_len": 7}
BM25_VARIANTS = {
    # knowledge_base.lexical's defaults: character 4-grams of German words of >= 7 letters (idf x .3),
    # Turkish diacritics folded
    "default": {},
    "plain": {"tokenizer": {**_TOK, "ngram_langs": [], "fold_langs": []}},
    "grams-de-tr": {"tokenizer": {**_TOK, "ngram_langs": ["de", "tr"], "fold_langs": ["tr"]}},
    "fold-tr-only": {"tokenizer": {**_TOK, "ngram_langs": [], "fold_langs": ["tr"]}},
}
BM25_PARAMS: dict = dict(BM25_VARIANTS["default"])


def bm25_kwargs(params: dict) -> dict:
    kw = {k: v for k, v in params.items() if k != "tokenizer"}
    if "tokenizer" in params:
        kw["tokenizer"] = Tokenizer.from_dict(params["tokenizer"])
    return kw


class Scorer:
    """Base article scores of every system for (knowledge base, questions), with caches."""

    def __init__(self, cache: EmbeddingCache):
        self.cache = cache
        self._kb: dict[str, dict] = {}

    def _kb_state(self, kb: KB) -> dict:
        st = self._kb.get(kb.name)
        if st is None:
            st = {"amap": ArticleMap(kb.entry_article, kb.n)}
            for short, spec in ENCODERS.items():
                st[short] = self.cache.encode(spec, kb.entry_texts)
            t0 = time.time()
            st["bm25"] = BM25Index(**bm25_kwargs(BM25_PARAMS)).build(kb.entry_texts, kb.entry_lang)
            st["bm25_build_s"] = time.time() - t0
            self._kb[kb.name] = st
        return st

    def classifier(self, kb: KB, name: str = "clf", C: float = CLF_C) -> ArticleClassifier:
        """The product's per-article classifier ``name`` (knowledge_base.hybrid.CLASSIFIERS): which
        encoders it reads and which entries train it; the canonical language is English, or the
        knowledge base's own for a knowledge base without English entries."""
        st = self._kb_state(kb)
        key = f"{name}@{C}"
        if key not in st:
            t0 = time.time()
            inputs, which = CLASSIFIERS[name]
            canonical = "en" if "en" in kb.entry_lang else kb.entry_lang[0]
            rows = training_rows(kb.entry_article, kb.entry_lang, which, canonical)
            X = np.hstack([st[n][rows] for n in inputs])
            st[key] = ArticleClassifier(C=C).fit(X, np.asarray(kb.entry_article)[rows], kb.n)
            log(f"  classifier {name} for {kb.name}: {time.time() - t0:.1f}s")
        return st[key]

    def base(self, kb: KB, q: Queries) -> dict[str, np.ndarray]:
        st = self._kb_state(kb)
        out, qv = {}, {}
        for short, spec in ENCODERS.items():
            qv[short] = self.cache.encode(spec, q.texts)
            out[short] = dense_article_scores(qv[short], st[short], st["amap"])
        bm = np.zeros((len(q), kb.n), dtype=np.float32)
        t0 = time.time()
        for i, (text, lang) in enumerate(zip(q.texts, q.langs)):
            bm[i] = st["amap"].max(st["bm25"].scores(text, lang, normalise=True), fill=0.0)
        st.setdefault("bm25_query_ms", []).append((time.time() - t0) * 1000 / max(1, len(q)))
        out["bm25"] = bm
        for name, (inputs, _) in CLASSIFIERS.items():
            out[name] = self.classifier(kb, name).predict_proba(np.hstack([qv[n] for n in inputs]))
        # which articles have an entry in the question's language (for the language fill of fusion)
        out["native"] = native_mask(kb.entry_article, kb.entry_lang, kb.n, q.langs)
        return out


def lang_split_fuse(cfgs: dict[str, FusionConfig], scores: dict[str, np.ndarray], langs: list[str]) -> np.ndarray:
    """Fuse with the 'en' config for English questions and the 'other' config for the rest."""
    is_en = np.array([lang_group(lang) == "en" for lang in langs])
    out = np.zeros_like(next(iter(scores.values())), dtype=np.float32)
    for key, mask in (("en", is_en), ("other", ~is_en)):
        if mask.any():
            sub = {n: s[mask] for n, s in scores.items()}
            out[mask] = cfgs[key].fuse(sub, sub.get("native"))
    return out


def fit_systems(val_scores: dict[str, np.ndarray], val: Queries, step: float) -> dict[str, object]:
    """Choose every system's configuration on the validation questions."""
    gm = gold_mask(val.gold, next(iter(val_scores.values())).shape[1])
    cfg: dict[str, object] = {}
    for single in ("use", "minilm", "bm25", "clf"):
        cfg[single] = FusionConfig({single: 1.0}, "raw")
    # classic RRF: equal weights, only k chosen on validation
    cands = [FusionConfig({n: 1.0 for n in BASE}, "rrf", rrf_k=k) for k in (10.0, 30.0, 60.0)]
    cfg["rrf"] = max(cands, key=lambda c: ranking_objective(gold_ranks(c.fuse(val_scores), gm)))
    cfg["z-fuse"], _ = choose_config(val_scores, gm, BASE, "zlist", step=step)
    cfg["mm-fuse"], _ = choose_config(val_scores, gm, BASE, "minmax", step=step)
    nat = val_scores["native"]
    cfg["g-fuse"], _ = choose_config(val_scores, gm, BASE, "global", step=step, native=nat)
    cfg["clf+nn"], _ = choose_config(val_scores, gm, ("clf",) + BASE, "global", step=max(step, 0.1), native=nat)
    # language-dependent configurations share one set of global stats so their scores are comparable
    stats = global_stats({n: val_scores[n] for n in BASE})
    is_en = np.array([lang_group(lang) == "en" for lang in val.langs])
    route, lang_fuse = {}, {}
    for key, mask in (("en", is_en), ("other", ~is_en)):
        sub = {n: s[mask] for n, s in val_scores.items()} if mask.any() else val_scores
        gsub = gm[mask] if mask.any() else gm
        if key == "en":
            r, _ = choose_config(sub, gsub, ("minilm", "bm25"), "global", step=step, native=sub["native"])
            route[key] = FusionConfig(r.weights, "global", stats)
        else:
            route[key] = FusionConfig({"use": 1.0}, "global", stats)
        lf, _ = choose_config(sub, gsub, BASE, "global", step=step, native=sub["native"])
        lang_fuse[key] = FusionConfig(lf.weights, "global", stats)
    cfg["route"], cfg["lang-fuse"] = route, lang_fuse
    return cfg


def apply_system(cfg: object, scores: dict[str, np.ndarray], langs: list[str]) -> np.ndarray:
    if isinstance(cfg, dict):
        return lang_split_fuse(cfg, scores, langs)
    return cfg.fuse(scores, scores.get("native"))


def config_dict(cfg: object) -> dict:
    if isinstance(cfg, dict):
        return {k: v.to_dict() for k, v in cfg.items()}
    return cfg.to_dict()


# ================================================================================================
# Metrics (the project's metrics / calibrate / decision_metrics)
# ================================================================================================
GOLD = "__gold__"


def to_rankings(fused: np.ndarray, kb_ids: list[str], q: Queries) -> tuple[list[Question], list]:
    """Project-style rankings; gold articles are renamed GOLD so that several relevant ones count once."""
    questions, rankings = [], []
    order = np.argsort(-fused, axis=1, kind="stable")
    for i in range(len(q)):
        gold = set(q.gold[i] or ())
        ids, scores, seen_gold = [], [], False
        for a in order[i]:
            if a in gold:
                if seen_gold:
                    continue
                seen_gold = True
                ids.append(GOLD)
            else:
                ids.append(kb_ids[a])
            scores.append(float(fused[i, a]))
        questions.append(Question(q.texts[i], GOLD if gold else None, q.langs[i]))
        rankings.append((ids, scores))
    return questions, rankings


def fast_calibrate(questions, rankings, source="validation", margins=(0.0, 0.01, 0.02, 0.03, 0.05)):
    """knowledge_base.evaluate.calibrate, vectorised (same candidates, objective and tie-breaking).

    The project's version is quadratic in Python (thresholds x questions); this one gives the same
    policy (checked against it on the sample knowledge base on every run) in milliseconds.
    """
    n = len(rankings)
    s = np.full((n, 3), -np.inf)
    hit = np.zeros((n, 3), dtype=bool)  # gold within the first 1, 2, 3
    oos = np.array([q.gold is None for q in questions])
    for i, (q, (ids, sc)) in enumerate(zip(questions, rankings)):
        k = min(3, len(sc))
        s[i, :k] = sc[:k]
        if q.gold is not None:
            ids3 = list(ids[:3])
            for j in range(3):
                hit[i, j] = q.gold in ids3[: j + 1]
    tops = sorted({round(float(r[1][0]), 4) for r in rankings if len(r[1])})
    cands = np.array([t + 1e-4 for t in tops] + [tops[0] - 1e-4] if tops else [0.5])
    thr = np.round(cands, 4)
    n_oos = int(oos.sum())
    n_in = max(1, n - n_oos)
    best, best_val = DecisionPolicy(calibrated_on=source), -1e9
    for margin in margins:
        for c0 in range(0, len(thr), 512):
            t = thr[c0:c0 + 512][:, None]  # T x 1
            answer_ok = s[None, :, 0] >= t
            close = 1 + ((s[None, :, 1] >= t) & (s[None, :, 0] - s[None, :, 1] < margin)).astype(int) \
                + ((s[None, :, 2] >= t) & (s[None, :, 0] - s[None, :, 2] < margin)).astype(int)
            clar = answer_ok & (close > 1)
            ans = answer_ok & (close == 1)
            correct_clar = np.where(close == 2, hit[None, :, 1], hit[None, :, 2]) & clar
            correct = (ans & hit[None, :, 0]) | correct_clar
            ins = ~oos[None, :]
            acc = (correct & ins).sum(1) / n_in
            wrong = ((ans | clar) & ~correct & ins).sum(1) / n_in
            clar_r = (clar & ins).sum(1) / n_in
            oos_r = ((~answer_ok) & oos[None, :]).sum(1) / n_oos if n_oos else np.zeros(len(t))
            val = 0.5 * (acc - 2 * wrong - 0.25 * clar_r) + 0.5 * oos_r
            for j in range(len(t)):
                if val[j] > best_val + 1e-12:
                    best_val = float(val[j])
                    best = DecisionPolicy(answer_threshold=float(round(float(t[j, 0]), 4)), clarify_margin=margin,
                                          calibrated_on=source)
    return best


gap_margins = clarify_margins  # knowledge_base.fusion: 0 and quantiles of the top-1/top-2 gap


def strict_accuracy(questions, rankings, policy: DecisionPolicy) -> float:
    """Protocol's in-scope accuracy: right article at top-1 AND above the threshold."""
    ok = n = 0
    for q, (ids, sc) in zip(questions, rankings):
        if q.gold is None:
            continue
        n += 1
        ok += bool(len(sc)) and sc[0] >= policy.answer_threshold and ids[0] == q.gold
    return ok / max(1, n)


def rnd(d: dict, nd: int = 4) -> dict:
    return {k: (round(v, nd) if isinstance(v, float) else v) for k, v in d.items()}
