"""Build (or keep) the product's index snapshot from its articles, calibrating the decision
thresholds on the validation questions when there are any."""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from .articles import Article, ImportProblem, ImportResult, load_source
from .config import KBSettings
from .encoders import Encoder, load_encoder
from .chunking import article_entries
from .evaluate import calibrate, decision_metrics, load_questions, metrics
from .fusion import clarify_margins
from .search import Searcher
from .snapshot import Snapshot, commit_snapshot, load_current, prepare_snapshot, source_hash


@dataclass
class BuildOutcome:
    snapshot: Snapshot
    built: bool
    problems: list[ImportProblem]


def _file_hash(path: Path | None) -> str:
    if path is None or not path.is_file():
        return "none"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def mode_key(settings: KBSettings, secondary: Encoder | None) -> str:
    """The part of a snapshot's source hash that is not the articles: calibration, retrieval mode."""
    mode = "hybrid:" + secondary.name if secondary else "dense"
    return f"{_file_hash(settings.calibration_file)}|{mode}|{settings.classifier_max_articles}"


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
        snap.hybrid = fit_hybrid(snap, encoder, secondary, questions, settings.classifier_max_articles)
    snap.manifest["retrieval"] = "hybrid" if snap.hybrid is not None else "dense"
    if questions:
        searcher = Searcher(snap, encoder, settings.default_locale, extra_encoders=extra)
        rankings = searcher.rank_many([q.text for q in questions], [q.lang for q in questions])
        margins = clarify_margins(rankings) if snap.hybrid is not None else (0.0, 0.01, 0.02, 0.03, 0.05)
        policy = calibrate(questions, rankings, source=settings.calibration_file.name, margins=margins)
        snap.manifest["decision"] = policy.to_dict()
        snap.manifest["validation"] = {**metrics(questions, rankings), **decision_metrics(questions, rankings, policy)}
    return BuildOutcome(commit_snapshot(settings.index_dir, snap), True, imported.problems)


def fit_hybrid(snap: Snapshot, primary, secondary, questions: list, classifier_max_articles: int,
               stats: dict | None = None, previous: Snapshot | None = None) -> dict:
    """Fit BM25, the per-article classifier (while articles are few enough) and the global score
    statistics (from the calibration questions' texts; no labels needed; or ``stats`` kept as given)."""
    from .hybrid import HybridScorer
    from .search import PRIMARY, hybrid_layout

    layout = hybrid_layout(snap)
    vectors = {PRIMARY: snap.vectors, "minilm": snap.extra_vectors["minilm"]}
    calibration = []
    if questions and stats is None:
        texts = [q.text for q in questions]
        qp, qs = primary.encode(texts), secondary.encode(texts)
        calibration = [(q.text, q.lang, {PRIMARY: qp[i], "minilm": qs[i]}) for i, q in enumerate(questions)]
    scorer = HybridScorer.fit(layout.entry_group, len(layout.groups), vectors, layout.entry_texts,
                              layout.entry_langs, calibration,
                              classifier=len(layout.groups) <= classifier_max_articles, stats=stats,
                              classifier_init=_classifier_init(previous, layout.groups))
    return scorer.state_dict()


def _classifier_init(previous: Snapshot | None, groups: list[str]):
    """The previous snapshot's classifier weights laid out for ``groups`` (new groups start at 0)."""
    clf = (previous.hybrid or {}).get("classifier") if previous is not None else None
    if not clf:
        return None
    import numpy as np

    from .search import hybrid_layout

    old_pos = {g: i for i, g in enumerate(hybrid_layout(previous).groups)}
    coef_old, inter_old = np.asarray(clf["coef"], dtype=np.float64), np.asarray(clf["intercept"], dtype=np.float64)
    coef = np.zeros((len(groups), coef_old.shape[1]))
    inter = np.zeros(len(groups))
    for i, g in enumerate(groups):
        if g in old_pos:
            coef[i], inter[i] = coef_old[old_pos[g]], inter_old[old_pos[g]]
    return coef, inter


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
    if current is not None and current.hybrid is not None:
        old_stats = next(iter(current.hybrid.get("configs", {}).values()), {}).get("stats") or None
    for key in ("validation",):
        if current is not None and key in current.manifest:
            snap.manifest[key] = current.manifest[key]
    if secondary is not None:
        snap.manifest["extra_encoder_specs"] = {"minilm": settings.secondary_encoder}
        questions = []
        if old_stats is None and settings.calibration_file and settings.calibration_file.is_file():
            questions = load_questions(settings.calibration_file)
        snap.hybrid = fit_hybrid(snap, encoder, secondary, questions, settings.classifier_max_articles,
                                 stats=old_stats, previous=current)
    snap.manifest["retrieval"] = "hybrid" if snap.hybrid is not None else "dense"
    snap.manifest["decision"] = decision.to_dict()
    return snap
