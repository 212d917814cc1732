"""Search a snapshot: rank articles (translation groups), pick the customer's language, decide."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from .articles import Article
from .confidence import CLARIFY_OPTIONS, TOPIC_WORDS, features, models_from_state, word_count
from .decision import ANSWER, CLARIFY, HANDOFF, DecisionPolicy
from .hybrid import lang_group
from .language import detect
from .encoders import Encoder
from .lexical import tokenize
from .snapshot import Snapshot


@dataclass(frozen=True)
class Hit:
    article_id: str
    group: str
    title: str
    locale: str
    score: float
    link: str
    answer: str
    # True when the customer asked in another language and no translation exists in theirs.
    other_language: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    decision: str
    hits: list[Hit]
    n_decided: int
    version: str
    lang: str | None = None
    timings_ms: dict = field(default_factory=dict)
    confidence: float | None = None  # P(the top article is right), from the confidence model
    # the runners-up worth offering if the customer says the answer did not help
    next_best: list[Hit] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "decision": self.decision,
            "hits": [{"article_id": h.article_id, "title": h.title, "locale": h.locale, "score": round(h.score, 4),
                      "group": h.group, "link": h.link} for h in self.hits],
            "version": self.version,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
        }


PRIMARY = "use"  # the name of the primary (FAISS-indexed) encoder in the hybrid scorer's weights
# A title word names its article's topic when at most this share of the articles' titles has it
# ("coupon", "address"; not "how", "my" or "order" in a shop whose titles all say "order").
TITLE_WORD_MAX_SHARE = 0.2


def title_words(articles) -> dict[str, frozenset[str]]:
    """Per translation group, the words of its titles (every translation) that name its topic."""
    words: dict[str, set[str]] = defaultdict(set)
    for art in articles:
        words[art.group].update(tokenize(art.title, art.locale))
    share = Counter(w for ws in words.values() for w in ws)
    limit = max(1.0, TITLE_WORD_MAX_SHARE * len(words))
    return {g: frozenset(w for w in ws if share[w] <= limit) for g, ws in words.items()}


class Searcher:
    """Immutable view of one snapshot; safe to share between threads.

    Two ways to rank: dense (the primary encoder through the FAISS index; used for very large
    knowledge bases) and hybrid (knowledge_base.hybrid: both encoders, BM25 and a per-article
    classifier, fused on a global scale; chosen by measurement, see README), when the snapshot
    carries a hybrid scorer.
    """

    def __init__(self, snapshot: Snapshot, encoder: Encoder, default_locale: str = "en",
                 policy: DecisionPolicy | None = None, candidates: int = 64,
                 extra_encoders: dict[str, Encoder] | None = None):
        if snapshot.manifest["encoder"] != encoder.name:
            raise ValueError(
                f"snapshot was built with encoder {snapshot.manifest['encoder']!r}, not {encoder.name!r}: rebuild it")
        self.snapshot = snapshot
        self.encoder = encoder
        self.encoders: dict[str, Encoder] = {PRIMARY: encoder, **(extra_encoders or {})}
        for name, spec_name in snapshot.manifest.get("extra_encoders", {}).items():
            enc = self.encoders.get(name)
            if enc is None or enc.name != spec_name:
                raise ValueError(f"snapshot needs encoder {name!r} = {spec_name!r}: load it or rebuild the snapshot")
        self.default_locale = default_locale
        self.policy = policy or snapshot.decision
        self.candidates = candidates
        self._article_of = {rid: rec.article_id for rid, rec in snapshot.records.items()}
        self._groups: dict[str, dict[str, Article]] = defaultdict(dict)
        for art in snapshot.articles.values():
            self._groups[art.group][art.locale] = art
        self.hybrid = None
        self.confidence: dict = {}
        if snapshot.hybrid is not None:
            from .hybrid import HybridScorer

            layout = hybrid_layout(snapshot)
            vectors = {PRIMARY: snapshot.vectors, **snapshot.extra_vectors}
            self.hybrid = HybridScorer.from_state(snapshot.hybrid, layout.entry_group, vectors, layout.entry_langs)
            self._group_names = layout.groups
            self.confidence = models_from_state(snapshot.hybrid.get("confidence"))
        self._title_words = title_words(snapshot.articles.values())

    @property
    def mode(self) -> str:
        return "hybrid" if self.hybrid is not None else "dense"

    def ranked_groups(self, text: str, lang: str | None) -> list[tuple[str, float]]:
        """All candidate groups, best first, with their fused (hybrid) or cosine (dense) score."""
        return self.assess(text, lang)[0]

    def assess(self, text: str, lang: str | None) -> tuple[list[tuple[str, float]], str, int, float | None]:
        """(groups best first with their scores, decision, how many top groups it concerns, the
        confidence that the top group is right or None when there is no confidence model)."""
        ranked, decision, n, p1, _ = self._assess(text, lang)
        return ranked, decision, n, p1

    def _assess(self, text: str, lang: str | None):
        """assess, and how many runners-up are worth offering after an unhelpful answer: the next two
        when the confidence model finds the right article likely among the top three (p3 >= .5),
        else (no model) those whose score reaches the policy's next-best floor."""
        if self.hybrid is None:
            ranked = self.group_scores(self.encoder.encode([text])[0])
            decision, n = self.policy.decide([s for _, s in ranked])
            return ranked, decision, n, None, self._runners_up_by_floor(ranked)
        qv = {n: self.encoders[n].encode([text])[0] for n in self.hybrid.encoders_needed(lang)}
        system = self.hybrid.system_scores(text, lang, qv)
        fused = self.hybrid.fuse(system, lang)
        order = np.argsort(-fused, kind="stable")
        ranked = [(self._group_names[p], float(fused[p])) for p in order.tolist()]
        model = self.confidence.get(lang_group(lang))
        if model is None:
            decision, n = self.policy.decide([s for _, s in ranked])
            return ranked, decision, n, None, self._runners_up_by_floor(ranked)
        words = word_count(text)
        F, _, names = features(system, self.hybrid.config_for(lang), self.hybrid.native(lang), [words], fused)
        if names != model.names:
            raise ValueError(f"the snapshot's confidence model expects {model.names}, the scorer gives {names}")
        p1, p3 = model.predict(F)
        margin = ranked[0][1] - ranked[1][1] if len(ranked) > 1 else float("inf")
        decision = model.decide(float(p1[0]), float(p3[0]), margin, words)
        n = 1 if decision == ANSWER else (min(CLARIFY_OPTIONS, len(ranked)) if decision == CLARIFY else 0)
        if decision == HANDOFF and words <= TOPIC_WORDS and self._names_a_top_article(text, lang, ranked):
            decision, n = CLARIFY, min(CLARIFY_OPTIONS, len(ranked))
        runners_up = min(2, len(ranked) - 1) if p3[0] >= 0.5 else 0
        return ranked, decision, n, float(p1[0]), runners_up

    def _names_a_top_article(self, text: str, lang: str | None, ranked) -> bool:
        """A topic message ("coupon", "change address") whose words name one of the top articles in
        its title: the customer named a topic the help centre has, so "I don't know" would be wrong;
        the top articles are offered to choose from instead."""
        said = set(tokenize(text, lang))
        return any(said & self._title_words.get(g, frozenset()) for g, _ in ranked[:CLARIFY_OPTIONS])

    def _runners_up_by_floor(self, ranked) -> int:
        floor = self.policy.next_best_floor
        return sum(1 for _, s in ranked[1:3] if s >= floor)

    @property
    def version(self) -> str:
        return self.snapshot.version

    def group_scores(self, query_vec: np.ndarray) -> list[tuple[str, float]]:
        """Groups ranked by their best entry score (an article's score is the best of its entries)."""
        scores, ids = self.snapshot.index.search(query_vec.reshape(1, -1), self.candidates)
        best: dict[str, float] = {}
        for s, rid in zip(scores[0].tolist(), ids[0].tolist()):
            if rid < 0:
                continue
            art = self.snapshot.articles.get(self._article_of.get(rid, ""))
            if art is None:
                continue
            if s > best.get(art.group, -1.0):
                best[art.group] = s
        return sorted(best.items(), key=lambda kv: -kv[1])

    def rank(self, text: str, lang: str | None = None) -> tuple[list[str], list[float]]:
        """Groups best first with their scores (for evaluation and calibration)."""
        ranked = self.ranked_groups(text, lang)
        return [g for g, _ in ranked], [s for _, s in ranked]

    def rank_many(self, texts: list[str], langs: list[str | None] | None = None,
                  batch_size: int = 64) -> list[tuple[list[str], list[float]]]:
        langs = langs or [None] * len(texts)
        if self.hybrid is not None:
            return [self.rank(t, lang) for t, lang in zip(texts, langs)]
        vecs = self.encoder.encode(texts, batch_size=batch_size)
        out = []
        for v in vecs:
            ranked = self.group_scores(v)
            out.append(([g for g, _ in ranked], [s for _, s in ranked]))
        return out

    def pick_translation(self, group: str, lang: str | None) -> tuple[Article, bool]:
        versions = self._groups[group]
        if lang and lang in versions:
            return versions[lang], False
        fallback = versions.get(self.default_locale) or next(iter(sorted(versions.items())))[1]
        return fallback, bool(lang) and fallback.locale != lang

    def search(self, text: str, lang: str | None = None, k: int = 5) -> SearchResult:
        import time

        t0 = time.perf_counter()
        if not lang:  # the confidence models are per language group and read whether articles are native
            lang = detect(text).lang
        ranked, decision, n, confidence, runners_up = self._assess(text, lang)
        t1 = time.perf_counter()
        hits = []
        for group, score in ranked[:max(k, n)]:
            art, other = self.pick_translation(group, lang)
            hits.append(Hit(art.id, group, art.title, art.locale, float(score), art.link, art.short_answer, other))
        t2 = time.perf_counter()
        return SearchResult(decision, hits, n, self.version, lang,
                            {"rank": (t1 - t0) * 1000, "decide": (t2 - t1) * 1000}, confidence,
                            hits[1:1 + runners_up])

    def article(self, article_id: str) -> Article | None:
        return self.snapshot.articles.get(article_id)


@dataclass(frozen=True)
class HybridLayout:
    groups: list[str]  # scorer "article" position -> translation group
    entry_group: list[int]  # entry (in snapshot order) -> group position
    entry_langs: list[str]  # entry -> its article's locale
    entry_texts: list[str]


def hybrid_layout(snapshot: Snapshot) -> HybridLayout:
    """The hybrid scorer ranks translation groups; its entries follow the snapshot's order."""
    groups = sorted({a.group for a in snapshot.articles.values()})
    pos = {g: i for i, g in enumerate(groups)}
    entry_group, entry_langs, entry_texts = [], [], []
    for rid in snapshot.order:
        rec = snapshot.records[rid]
        art = snapshot.articles[rec.article_id]
        entry_group.append(pos[art.group])
        entry_langs.append(art.locale)
        entry_texts.append(rec.text)
    return HybridLayout(groups, entry_group, entry_langs, entry_texts)
