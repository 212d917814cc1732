"""Build (or keep) the product's index snapshot from its articles, calibrating the decision
thresholds on the validation questions when there are any."""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .articles import Article, ImportProblem, ImportResult, load_source
from .config import KBSettings
from .encoders import Encoder, load_encoder
from .chunking import article_entries
from .evaluate import calibrate, load_questions, search_metrics
from .calibration import MIN_QUESTIONS
from .confidence import MAX_HANDOFF, fused_threshold, state_of
from .decision import DecisionPolicy
from .fusion import clarify_margins
from .hybrid import DEFAULT_CLASSIFIER_C
from .search import Searcher
from .snapshot import Snapshot, commit_snapshot, load_current, prepare_snapshot, source_hash


@dataclass
class BuildOutcome:
    snapshot: Snapshot
    built: bool
    problems: list[ImportProblem]


# Changes whenever what the hybrid scorer fits changes (classifiers, statistics, confidence models), so
# that an older snapshot is rebuilt instead of being read by code that expects more of it.
SCORER_VERSION = "s6"


def _file_hash(path: Path | None) -> str:
    if path is None or not path.is_file():
        return "none"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def mode_key(settings: KBSettings, secondary: Encoder | None) -> str:
    """The part of a snapshot's source hash that is not the articles: calibration, retrieval mode."""
    mode = f"hybrid-{SCORER_VERSION}:{secondary.name}:{settings.default_locale}" if secondary else "dense"
    return (f"{_file_hash(settings.calibration_file)}|{mode}|{settings.classifier_max_articles}"
            f"|{settings.max_handoff_rate}")


def ensure_index(settings: KBSettings, source: Path | None = None, force: bool = False,
                 show_progress: bool = True, articles: list[Article] | None = None) -> BuildOutcome:
    """Build the snapshot unless the current one was built from the same inputs. ``articles``
    (e.g. the gateway database's published set) replaces reading ``source`` / the articles folder."""
    if articles is not None:
        imported = ImportResult(articles=list(articles))
        source = "the given articles"
    else:
        source = source or settings.articles_dir
        imported = load_source(source)
    if not imported.articles:
        raise ValueError(f"no valid articles found in {source}")
    encoder = load_encoder(settings.encoder, settings.encoder_threads)
    n_entries = sum(len(article_entries(a)) for a in imported.articles if a.status == "published")
    hybrid = settings.retrieval == "hybrid" and n_entries <= settings.hybrid_max_entries
    secondary = load_encoder(settings.secondary_encoder, settings.encoder_threads) if hybrid else None
    mode_key_ = mode_key(settings, secondary)
    key = source_hash(imported.articles, encoder.name, mode_key_)
    current = None
    try:
        current = load_current(settings.index_dir)
    except Exception:
        current = None
    if current is not None and current.manifest.get("source_hash") == key and not force:
        return BuildOutcome(current, False, imported.problems)

    from tqdm import tqdm

    bar = tqdm(total=n_entries, desc="Indexing knowledge base", unit="chunk", disable=not show_progress,
               file=sys.stderr)
    extra = {"minilm": secondary} if secondary is not None else None
    snap = prepare_snapshot(settings.index_dir, imported.articles, encoder, progress=bar.update,
                            source_key_extra=mode_key_, extra_encoders=extra)
    bar.close()
    questions = load_questions(settings.calibration_file) if settings.calibration_file and \
        settings.calibration_file.is_file() else []
    if secondary is not None:
        snap.manifest["extra_encoder_specs"] = {"minilm": settings.secondary_encoder}
        snap.hybrid = fit_hybrid(snap, encoder, secondary, questions, settings.classifier_max_articles,
                                 canonical=settings.default_locale, max_handoff=settings.max_handoff_rate)
    finish_calibration(snap, encoder, extra, settings.default_locale, questions, _source_name(settings))
    return BuildOutcome(commit_snapshot(settings.index_dir, snap), True, imported.problems)


def finish_calibration(snap: Snapshot, encoder: Encoder, extra: dict | None, default_locale: str,
                       questions: list, source: str = "validation") -> None:
    """The snapshot's decision policy and what it does on the labelled questions, in its manifest.

    With a confidence model (hybrid retrieval), the policy's fused-score threshold is the one chosen
    on the same calibration questions (it bounds the runner-up offered after an unhelpful answer);
    without one (dense retrieval), the threshold and clarify margin are calibrated on ``questions``."""
    snap.manifest["retrieval"] = "hybrid" if snap.hybrid is not None else "dense"
    searcher = Searcher(snap, encoder, default_locale, extra_encoders=extra)
    calibration = (snap.hybrid or {}).get("calibration")
    if calibration:
        snap.manifest["decision"] = DecisionPolicy(answer_threshold=calibration["fused_threshold"],
                                                   clarify_margin=0.0,
                                                   calibrated_on=calibration["source"]).to_dict()
        snap.manifest["calibration"] = {k: v for k, v in calibration.items() if k != "articles"}
    elif questions:
        rankings = searcher.rank_many([q.text for q in questions], [q.lang for q in questions])
        margins = clarify_margins(rankings) if snap.hybrid is not None else (0.0, 0.01, 0.02, 0.03, 0.05)
        policy = calibrate(questions, rankings, source=source, margins=margins)
        snap.manifest["decision"] = policy.to_dict()
        searcher = Searcher(snap, encoder, default_locale, extra_encoders=extra)
    if questions:
        # in sample when these are the calibration questions: the honest figures are the
        # out-of-fold ones in manifest["calibration"] and bench/quality_eval.py's
        snap.manifest["validation"] = search_metrics(searcher, questions)


def _source_name(settings: KBSettings) -> str:
    return settings.calibration_file.name if settings.calibration_file else "the articles"


def fit_hybrid(snap: Snapshot, primary, secondary, questions: list, classifier_max_articles: int,
               stats: dict | None = None, previous: Snapshot | None = None, canonical: str | None = "en",
               max_handoff: float = MAX_HANDOFF) -> dict:
    """Fit BM25, the per-article classifiers (while articles are few enough), the global score
    statistics and the confidence models (knowledge_base.confidence), and return the scorer's state.

    Calibration: on the labelled ``questions`` when at least MIN_LABELLED of them are about this
    knowledge base's articles, else on its own "also asked as" questions (knowledge_base.calibration).
    With ``stats`` given (a live publish), the statistics and the confidence models of ``previous``
    are kept: a publish stays fast and the decision keeps its scale."""
    from .calibration import (MIN_LABELLED, calibration_sets, fit_confidence, heldout_scores, pseudo_questions)
    from .hybrid import HybridScorer
    from .search import PRIMARY, hybrid_layout

    layout = hybrid_layout(snap)
    vectors = {PRIMARY: snap.vectors, "minilm": snap.extra_vectors["minilm"]}
    pos = {g: i for i, g in enumerate(layout.groups)}
    pos.update({a.id: pos[a.group] for a in snap.articles.values()})  # gold may name an article or its group
    labelled = [q for q in questions if q.gold is None or any(g in pos for g in q.golds)]
    use_labelled = stats is None and sum(q.gold is not None for q in labelled) >= MIN_LABELLED
    calibration = []
    if use_labelled:
        texts = [q.text for q in labelled]
        qp, qs = primary.encode(texts), secondary.encode(texts)
        calibration = [(q.text, q.lang, {PRIMARY: qp[i], "minilm": qs[i]}) for i, q in enumerate(labelled)]
    kinds = [snap.records[rid].kind for rid in snap.order]
    idx = pseudo_questions(kinds, layout.entry_group)
    heldout: dict = {}
    use_classifiers = len(layout.groups) <= classifier_max_articles

    def heldout_of(scorer) -> dict:
        if "scores" not in heldout:
            # no "also asked as" questions: entries of any kind, for the scale only
            rows = idx if len(idx) else np.sort(np.random.default_rng(0).permutation(len(kinds))[:1500])
            heldout["rows"] = rows
            heldout["scores"] = heldout_scores(scorer, rows, layout.entry_texts, layout.entry_langs, canonical,
                                               DEFAULT_CLASSIFIER_C)
        return heldout["scores"]

    scorer = HybridScorer.fit(layout.entry_group, len(layout.groups), vectors, layout.entry_texts,
                              layout.entry_langs, calibration, classifier=use_classifiers, stats=stats,
                              classifier_init=_classifier_init(previous, layout.groups), canonical=canonical,
                              heldout=heldout_of)
    state = scorer.state_dict()
    if stats is not None:
        for key in ("confidence", "calibration"):
            if previous is not None and (previous.hybrid or {}).get(key) is not None:
                state[key] = previous.hybrid[key]
        return state
    if use_labelled:
        per = [scorer.system_scores(t, lang, qv, only_needed=False) for t, lang, qv in calibration]
        scores = {n: np.stack([p[n] for p in per]) for n in per[0]}
        gold = [[pos[g] for g in q.golds if g in pos] for q in labelled]
        langs, texts = [q.lang for q in labelled], [q.text for q in labelled]
        source = "labelled questions"
    elif len(idx) >= MIN_QUESTIONS:
        scores = heldout_of(scorer)
        gold = [layout.entry_group[i] for i in idx]
        langs, texts = [layout.entry_langs[i] for i in idx], [layout.entry_texts[i] for i in idx]
        source = "the articles' own questions"
    else:
        return state  # nothing to calibrate on: the decision falls back to the fused score's threshold
    sets = calibration_sets(scorer, scores, gold, langs, texts)
    models, report = fit_confidence(sets, source, max_handoff)
    state["confidence"] = state_of(models)
    en = sets.get("en") or next(iter(sets.values()))
    state["calibration"] = {"source": source, "groups": report, "fused_threshold": fused_threshold(en),
                            "articles": list(layout.groups)}
    return state


def _classifier_init(previous: Snapshot | None, groups: list[str]) -> dict | None:
    """The previous snapshot's classifier weights laid out for ``groups`` (new groups start at 0)."""
    classifiers = (previous.hybrid or {}).get("classifiers") if previous is not None else None
    if not classifiers:
        return None
    from .search import hybrid_layout

    old_pos = {g: i for i, g in enumerate(hybrid_layout(previous).groups)}
    out = {}
    for name, clf in classifiers.items():
        coef_old = np.asarray(clf["coef"], dtype=np.float64)
        inter_old = np.asarray(clf["intercept"], dtype=np.float64)
        coef = np.zeros((len(groups), coef_old.shape[1]))
        inter = np.zeros(len(groups))
        for i, g in enumerate(groups):
            if g in old_pos:
                coef[i], inter[i] = coef_old[old_pos[g]], inter_old[old_pos[g]]
        out[name] = (coef, inter)
    return out


def prepare_update(settings: KBSettings, articles: list[Article], encoder: Encoder,
                   secondary: Encoder | None, current: Snapshot | None) -> Snapshot:
    """A new snapshot of ``articles`` (the full published set) for a live publish, in memory only:
    vectors of unchanged entries are reused from the current snapshot, the decision policy and the
    hybrid scorer's score statistics are kept from it (no recalibration: a publish stays fast and the
    thresholds stay on the same scale), BM25 and the classifier are refitted. ``commit_snapshot``
    publishes it; a ``Searcher`` over it tries it without publishing."""
    from .decision import DecisionPolicy

    n_entries = sum(len(article_entries(a)) for a in articles if a.status == "published")
    if not (settings.retrieval == "hybrid" and n_entries <= settings.hybrid_max_entries):
        secondary = None
    extra = {"minilm": secondary} if secondary is not None else None
    decision = current.decision if current is not None else DecisionPolicy()
    snap = prepare_snapshot(settings.index_dir, articles, encoder, decision,
                            source_key_extra=mode_key(settings, secondary), extra_encoders=extra)
    old_stats = None
    if current is not None and current.hybrid is not None and not needs_recalibration(current, snap):
        old_stats = next(iter(current.hybrid.get("configs", {}).values()), {}).get("stats") or None
    for key in ("validation", "calibration"):
        if old_stats is not None and key in current.manifest:
            snap.manifest[key] = current.manifest[key]
    snap.manifest["decision"] = decision.to_dict()
    if secondary is not None:
        snap.manifest["extra_encoder_specs"] = {"minilm": settings.secondary_encoder}
        questions = []
        if old_stats is None and settings.calibration_file and settings.calibration_file.is_file():
            questions = load_questions(settings.calibration_file)
        snap.hybrid = fit_hybrid(snap, encoder, secondary, questions, settings.classifier_max_articles,
                                 stats=old_stats, previous=current, canonical=settings.default_locale,
                                 max_handoff=settings.max_handoff_rate)
        if old_stats is None:
            finish_calibration(snap, encoder, {"minilm": secondary}, settings.default_locale, questions,
                               _source_name(settings))
    snap.manifest["retrieval"] = "hybrid" if snap.hybrid is not None else "dense"
    return snap


RECALIBRATE_SHARE = 0.2


def needs_recalibration(current: Snapshot, new: Snapshot) -> bool:
    """True when more than RECALIBRATE_SHARE of the articles (translation groups) were added or
    removed since the current snapshot's calibration: its score scale and confidence models were
    learnt on another knowledge base (e.g. after a bulk import replaced the sample articles)."""
    calibrated = set(((current.hybrid or {}).get("calibration") or {}).get("articles") or ())
    if not calibrated:
        return False
    now = {a.group for a in new.articles.values()}
    changed = len(calibrated ^ now)
    return changed > RECALIBRATE_SHARE * max(len(calibrated), len(now))
