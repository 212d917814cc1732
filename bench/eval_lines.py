"""Retrieval evaluation, part 3: one evaluation line end to end (prepare, choose the defaults on pooled
validation, finish with metrics per language) and the BM25 ablations. See bench/retrieval_eval.py.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

# eval_data first: it puts the project on sys.path and sets the thread counts
from eval_data import ALL_SYSTEMS, BASE, KB, Line, Queries
from knowledge_base.evaluate import calibrate, decision_metrics, metrics
from knowledge_base.fusion import (ArticleMap, FusionConfig, global_stats, gold_mask, gold_ranks, ranking_objective,
                                   weight_grid)
from knowledge_base.hybrid import lang_group
from knowledge_base.lexical import BM25Index, Tokenizer
from eval_systems import (BM25_VARIANTS, Scorer, apply_system, bm25_kwargs, config_dict, fast_calibrate,
                          fit_systems, gap_margins, lang_split_fuse, rnd, strict_accuracy, to_rankings)


@dataclass
class Prepared:
    line: Line
    val_scores: list[dict[str, np.ndarray]]
    test_scores: list[dict[str, np.ndarray]]
    configs: list[dict[str, object]]
    seconds: float


def prepare_line(line: Line, scorer: Scorer, step: float) -> Prepared:
    """Base scores of every system on validation and test questions; per-line configurations."""
    t0 = time.time()
    sv_all, st_all, cfgs = [], [], []
    for fold in line.folds:
        sv = scorer.base(fold.kb_val, fold.val)
        st = scorer.base(fold.kb_test, fold.test)
        sv_all.append(sv)
        st_all.append(st)
        cfgs.append(fit_systems(sv, fold.val, step))
    return Prepared(line, sv_all, st_all, cfgs, time.time() - t0)


def family(line_name: str) -> str:
    return line_name.split("/")[0]


def choose_defaults(prepared: list[Prepared], names: tuple[str, ...], step: float, fill: str | None = "use",
                    without: str | None = None) -> dict[str, dict[str, float]]:
    """One fixed set of weights per language group, chosen on the POOLED validation questions of all
    lines (each data set family counts once) but those of the family ``without``; global stats stay
    per knowledge base (label-free)."""
    out = {}
    for group in ("en", "other"):
        parts = []  # (family, scores, gold mask, stats)
        for p in prepared:
            if without is not None and family(p.line.name) == without:
                continue
            for fold, sv in zip(p.line.folds, p.val_scores):
                mask = np.array([lang_group(lang) == group for lang in fold.val.langs])
                if not mask.any():
                    continue
                gm = gold_mask(fold.val.gold, fold.kb_val.n)[mask]
                if not gm.any():
                    continue
                sub = {n: sv[n][mask] for n in set(names) | {"use", "native"}}
                parts.append((family(p.line.name), p.line.name, sub, gm,
                              global_stats({n: sv[n] for n in set(names) | {"use"}})))
        if not parts:
            continue
        best, best_val = None, -1.0
        # the English-only encoder (and the classifier that reads it) is not run for other languages:
        # it costs ~13 of a non-English question's ~15 ms (README, Measurements)
        group_names = tuple(n for n in names if group == "en" or n not in ENGLISH_ONLY)
        for w0 in weight_grid(group_names, max(step, 0.1)):
            w = {n: w0.get(n, 0.0) for n in names}
            per_line: dict[tuple[str, str], list[float]] = defaultdict(list)
            for fam, lname, sub, gm, stats in parts:
                cfg = FusionConfig(w, "global", stats, fill_from=fill)
                per_line[(fam, lname)].append(ranking_objective(gold_ranks(cfg.fuse(sub, sub["native"]), gm)))
            per_fam: dict[str, list[float]] = defaultdict(list)
            for (fam, _), v in per_line.items():
                per_fam[fam].append(float(np.mean(v)))
            val = float(np.mean([np.mean(v) for v in per_fam.values()]))
            if val > best_val + 1e-12:
                best, best_val = w, val
        out[group] = best
        if without is None:
            VALIDATION_OBJECTIVE[f"{'+'.join(names)}{'' if fill else '/no-fill'}:{group}"] = round(best_val, 4)
    return out


VALIDATION_OBJECTIVE: dict[str, float] = {}
ENGLISH_ONLY = ("minilm", "clf")  # systems that need the English-only encoder


DEFAULT_SYSTEMS = {  # name: (systems, language fill)
    "default": (BASE, "use"),
    "default+clf": (("clf", "clfx") + BASE, "use"),
    "default/no-fill": (BASE, None),
    "default+clf/no-fill": (("clf", "clfx") + BASE, None),
}


def add_default_systems(prepared: list[Prepared], step: float) -> dict:
    """The fixed-weight systems. What ships (and is returned) is chosen on the pooled validation
    questions of every family; what each line REPORTS is chosen without its own family's validation
    questions, so no reported figure is measured on questions its weights were chosen on (the COVID
    lines cross-fit two halves of one query set: pooled, each half was the other's validation)."""
    chosen = {}
    families = sorted({family(p.line.name) for p in prepared})
    for name, (names, fill) in DEFAULT_SYSTEMS.items():
        chosen[name] = choose_defaults(prepared, names, step, fill)
        held_out = {fam: choose_defaults(prepared, names, step, fill, without=fam) for fam in families}
        LEAVE_FAMILY_OUT[name] = held_out
        for p in prepared:
            weights = held_out[family(p.line.name)]
            for sv, cfg in zip(p.val_scores, p.configs):
                stats = global_stats({n: sv[n] for n in set(names) | {"use"}})
                cfg[name] = {g: FusionConfig(dict(weights.get(g) or chosen[name].get(g) or chosen[name]["en"]),
                                             "global", stats, fill_from=fill)
                             for g in ("en", "other")}
    return chosen


LEAVE_FAMILY_OUT: dict[str, dict] = {}  # system -> family -> the weights its lines were measured with


def finish_line(p: Prepared, check_calibrate: bool) -> dict:
    line = p.line
    t0 = time.time()
    tests = [f.test for f in line.folds]
    vals = [f.val for f in line.folds]
    kb_ids = line.folds[0].kb_test.article_ids
    out: dict = {"note": line.note, "systems": {},
                 "configs": [{k: config_dict(v) for k, v in c.items()} for c in p.configs],
                 "n_test": sum(len(t) for t in tests), "n_val": sum(len(v) for v in vals),
                 "articles": line.folds[0].kb_test.n, "entries": len(line.folds[0].kb_test.entry_texts)}
    if len(out["configs"]) == 1:
        out["configs"] = out["configs"][0]
    for name in ALL_SYSTEMS:
        qs, rk = [], []
        for fold, st, cfg in zip(line.folds, p.test_scores, p.configs):
            a, b = to_rankings(apply_system(cfg[name], st, fold.test.langs), kb_ids, fold.test)
            qs += a
            rk += b
        res = rnd(metrics(qs, rk))
        if line.decision:
            fused_val = apply_system(p.configs[0][name], p.val_scores[0], vals[0].langs)
            vq, vr = to_rankings(fused_val, line.folds[0].kb_val.article_ids, vals[0])
            # protocol: a pure threshold (no clarify), chosen on validation
            pol0 = fast_calibrate(vq, vr, margins=(0.0,))
            d0 = decision_metrics(qs, rk, pol0)
            res.update({"thr_in_scope_accuracy": round(strict_accuracy(qs, rk, pol0), 4),
                        "thr_oos_recall": round(d0["oos_recall"], 4),
                        "thr_oos_precision": round(d0["oos_precision"], 4),
                        "thr_oos_f1": round(d0["oos_f1"], 4), "threshold": pol0.answer_threshold})
            # product: threshold + clarify margin (on the system's own scale), the project's objective
            margins = gap_margins(vr)
            pol = fast_calibrate(vq, vr, margins=margins)
            if check_calibrate:
                ref = calibrate(vq, vr, margins=margins)
                assert (ref.answer_threshold, ref.clarify_margin) == (pol.answer_threshold, pol.clarify_margin), \
                    f"fast_calibrate differs from calibrate for {name}: {ref} vs {pol}"
            res.update({f"product_{k}": v for k, v in rnd(decision_metrics(qs, rk, pol)).items()
                        if k not in ("answer_threshold", "clarify_margin")})
            res["product_policy"] = {"answer_threshold": pol.answer_threshold, "clarify_margin": pol.clarify_margin}
            if line.per_lang:
                res["per_lang"] = per_language(qs, rk, vq, vr, pol, margins)
        elif line.per_lang:
            res["per_lang"] = per_language(qs, rk, None, None, None, None)
        out["systems"][name] = res
    out["seconds"] = round(p.seconds + time.time() - t0, 1)
    return out


def per_language(qs, rk, vq, vr, pol, margins) -> dict:
    """Per language: ranking metrics, and decisions with thresholds calibrated on (a) all validation
    questions, (b) the English validation questions only (does an English threshold hold?),
    (c) each language's own validation questions."""
    out = {}
    pols = {}
    if vq is not None:
        def cal(idx, m):
            return fast_calibrate([vq[i] for i in idx], [vr[i] for i in idx], margins=m)

        all_idx = list(range(len(vq)))
        pols["all"] = (pol, cal(all_idx, (0.0,)))
        en_idx = [i for i, q in enumerate(vq) if q.lang == "en"]
        pols["en"] = (cal(en_idx, margins), cal(en_idx, (0.0,)))
        other_idx = [i for i, q in enumerate(vq) if lang_group(q.lang) == "other"]
        pol_other = (cal(other_idx, margins), cal(other_idx, (0.0,)))
    for lang in ("en", "de", "tr", "ja"):
        idx = [i for i, q in enumerate(qs) if q.lang == lang]
        if not idx:
            continue
        sq, sr = [qs[i] for i in idx], [rk[i] for i in idx]
        m = {k: v for k, v in metrics(sq, sr).items() if k in ("top1", "recall@3", "mrr", "auroc", "in_scope")}
        if pols:
            own_idx = [i for i, q in enumerate(vq) if q.lang == lang]
            variants = dict(pols)
            variants["own"] = (cal(own_idx, margins), cal(own_idx, (0.0,)))
            # per language group: English questions by the English policy, the others by one
            # policy calibrated on all non-English validation questions
            variants["grp"] = pols["en"] if lang == "en" else pol_other
            for key, (p_full, p_thr) in variants.items():
                prefix = "" if key == "all" else f"{key}_"
                d = decision_metrics(sq, sr, p_full)
                d0 = decision_metrics(sq, sr, p_thr)
                m.update({f"{prefix}in_scope_accuracy": d["in_scope_accuracy"],
                          f"{prefix}wrong_answer_rate": d["wrong_answer_rate"],
                          f"{prefix}oos_recall": d["oos_recall"],
                          f"{prefix}thr_in_scope_accuracy": strict_accuracy(sq, sr, p_thr),
                          f"{prefix}thr_oos_recall": d0["oos_recall"],
                          f"{prefix}threshold": p_thr.answer_threshold})
        out[lang] = rnd(m)
    if pols:
        pols["other"] = pol_other
        out["policies"] = {k: {"answer_threshold": v[0].answer_threshold, "clarify_margin": v[0].clarify_margin,
                               "threshold_only": v[1].answer_threshold} for k, v in pols.items()}
        # all questions, each decided by its language group's policy
        n_in = n_ok = n_wrong = n_oos = n_oos_ho = 0
        for grp, p_full in (("en", pols["en"][0]), ("other", pol_other[0])):
            idx = [i for i, q in enumerate(qs) if lang_group(q.lang) == grp]
            d = decision_metrics([qs[i] for i in idx], [rk[i] for i in idx], p_full)
            gi = sum(qs[i].gold is not None for i in idx)
            go = len(idx) - gi
            n_in += gi
            n_ok += d["in_scope_accuracy"] * gi
            n_wrong += d["wrong_answer_rate"] * gi
            n_oos += go
            n_oos_ho += (d["oos_recall"] * go) if go else 0
        out["by_group_policy"] = rnd({"in_scope_accuracy": n_ok / max(1, n_in),
                                      "wrong_answer_rate": n_wrong / max(1, n_in),
                                      "oos_recall": n_oos_ho / max(1, n_oos)})
    return out


# ================================================================================================
# BM25 ablation (tokeniser variants), cheap: no embeddings
# ================================================================================================
def bm25_ablation(lines: list[Line]) -> dict:
    variants = {
        "plain: words + CJK bigrams": dict(tokenizer=Tokenizer(4, 7, (), ())),
        "default: + 4-grams de (>=7, idf x.3) + fold tr": dict(tokenizer=Tokenizer()),
        "4-grams de (>=9), no fold": dict(tokenizer=Tokenizer(4, 9, ("de",), ())),
        "4-grams de (>=7, idf x.5), no fold": dict(tokenizer=Tokenizer(4, 7, ("de",), ()), gram_weight=0.5),
        "4-grams de,tr (>=7) + fold tr": dict(tokenizer=Tokenizer(4, 7, ("de", "tr"), ("tr",))),
        "fold tr only": dict(tokenizer=Tokenizer(4, 7, (), ("tr",))),
        "fold all languages only": dict(tokenizer=Tokenizer(4, 7, (), ("*",))),
        "default, k1=1.5": dict(k1=1.5),
        "default, k1=0.9 b=0.4": dict(k1=0.9, b=0.4),
    }
    out = {}
    for line in lines:
        if line.name.startswith(("banking77/all", "clinc150", "covid/de-closed", "covid/en-closed", "covid/de->",
                                 "covid/en->")):
            continue
        res = {}
        for vname, kw in variants.items():
            per = {}
            for split in ("val", "test"):
                ranks = []
                for fold in line.folds:
                    kb = fold.kb_val if split == "val" else fold.kb_test
                    q = fold.val if split == "val" else fold.test
                    bm = BM25Index(**kw).build(kb.entry_texts, kb.entry_lang)
                    amap = ArticleMap(kb.entry_article, kb.n)
                    S = np.stack([amap.max(bm.scores(t, lang), fill=0.0) for t, lang in zip(q.texts, q.langs)])
                    ranks.append(gold_ranks(S, q.gold))
                r = np.concatenate(ranks)
                r = r[r > 0]
                per[split] = {"top1": round(float((r == 1).mean()), 4), "mrr": round(float((1 / r).mean()), 4)}
                if line.per_lang and split == "test":
                    langs = np.array([lg for f in line.folds for lg, g in zip(f.test.langs, f.test.gold) if g])
                    for lg in ("en", "de", "tr", "ja"):
                        rr = r[langs == lg]
                        per[f"test_{lg}"] = {"top1": round(float((rr == 1).mean()), 4),
                                             "mrr": round(float((1 / rr).mean()), 4)}
            res[vname] = per
        out[line.name] = res
    return out


def bm25_in_fusion(prepared: list[Prepared], step: float) -> dict:
    """Does a BM25 tokenisation variant help the FUSED search? Only texts labelled de/tr change, so
    only the lines with non-English questions are redone: for each variant, the 'other' weights of
    the default design are chosen again on the pooled validation questions, then measured on test."""
    subset = [p for p in prepared if any(lang_group(lg) == "other" for f in p.line.folds for lg in f.val.langs)]
    out = {}
    for vname, params in BM25_VARIANTS.items():
        kw = bm25_kwargs(params)
        cache: dict[str, tuple[BM25Index, ArticleMap]] = {}

        def bm(kb: KB, q: Queries) -> np.ndarray:
            if kb.name not in cache:
                cache[kb.name] = (BM25Index(**kw).build(kb.entry_texts, kb.entry_lang),
                                  ArticleMap(kb.entry_article, kb.n))
            idx, amap = cache[kb.name]
            return np.stack([amap.max(idx.scores(t, lang, normalise=True), fill=0.0)
                             for t, lang in zip(q.texts, q.langs)])

        redone = []
        for p in subset:
            sv = [{**s, "bm25": bm(f.kb_val, f.val)} for s, f in zip(p.val_scores, p.line.folds)]
            st = [{**s, "bm25": bm(f.kb_test, f.test)} for s, f in zip(p.test_scores, p.line.folds)]
            redone.append(Prepared(p.line, sv, st, [dict(c) for c in p.configs], 0.0))
        key = "use+minilm+bm25:other"
        before = VALIDATION_OBJECTIVE.get(key)
        weights = choose_defaults(redone, BASE, step, "use")
        res = {"other_weights": weights.get("other"), "pooled_validation_objective_other": VALIDATION_OBJECTIVE[key]}
        if before is not None:
            VALIDATION_OBJECTIVE[key] = before
        for p in redone:
            ranks, langs = [], []
            for f, sv, st in zip(p.line.folds, p.val_scores, p.test_scores):
                stats = global_stats({n: sv[n] for n in BASE})
                cfgs = {g: FusionConfig(dict(weights.get(g) or weights["en"]), "global", stats)
                        for g in ("en", "other")}
                # the 'en' weights are unchanged by the variant: take them from the main run
                cfgs["en"] = p.configs[0]["default"]["en"]
                fused = lang_split_fuse(cfgs, st, f.test.langs)
                ranks.append(gold_ranks(fused, f.test.gold))
                langs += f.test.langs
            r = np.concatenate(ranks)
            langs_a = np.array(langs)
            m = r > 0
            res[p.line.name] = {"top1": round(float((r[m] == 1).mean()), 4), "mrr": round(float((1 / r[m]).mean()), 4)}
            if p.line.per_lang:
                for lg in ("en", "de", "tr", "ja"):
                    mm = m & (langs_a == lg)
                    res[f"{p.line.name} [{lg}]"] = {"top1": round(float((r[mm] == 1).mean()), 4)}
        out[vname] = res
    return out
