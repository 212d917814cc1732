"""How sure the hybrid ranking is: a stacked model over every system's view of the question.

The fused top score alone says how well the best article matches, not whether it is the right one:
a question about something the knowledge base does not cover often matches some article well (the
same words, the same domain). What tells them apart is spread over the systems: how each of the
encoders, BM25 and the classifiers scores the top article, its own best article and its own
runner-up; how far the top article is ahead after fusion; how sure the classifiers are (their
entropy); whether the top article is in the customer's language; how long the question is. (Out of
fold on the calibration questions this separates in-scope from unanswerable questions better than
the fused scores alone: AUROC .925 against .913 for the sample help centre's non-English questions,
.942 against .935 on banking77.) Per language group (English / other, knowledge_base.hybrid.lang_group) two logistic
regressions over those features give

    p1 = P(the top article is the right one)       p3 = P(the right one is among the top three)

fitted on calibration questions: labelled ones (their in-scope questions also a second time with
their own article taken away, as in-domain questions the knowledge base cannot answer), or,
without labels, the knowledge base's own "also asked as" questions (knowledge_base.calibration).
The decision (``GroupModel.decide``) answers when p1 is high enough and no runner-up is close,
offers the top articles to choose from when p3 is, and hands off otherwise. Its thresholds are
chosen on predictions for questions the models did not see (k-fold over the calibration
questions), with the project's objective (knowledge_base.evaluate.calibrate): in-scope accuracy
and hand-off of unanswerable questions weighted equally, a wrong answer costing twice a needless
hand-off and a clarification a quarter, among the thresholds that answer at most MAX_WRONG of the
in-scope questions wrongly and hand off at most ``max_handoff`` of them (KB_MAX_HANDOFF_RATE); when
a knowledge base cannot keep both, fewer wrong answers win. Whatever the calibration, nothing with
p1 under MIN_ANSWER (.5) is answered outright.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .decision import ANSWER, CLARIFY, HANDOFF
from .fusion import FusionConfig

CLARIFY_OPTIONS = 3
CLASSIFIER_SYSTEMS = ("clf", "clfx")
TOPIC_WORDS = 3  # a message of at most this many words names a topic rather than asks a question

_CJK = re.compile(r"[\u3041-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]+")
_WORDS = re.compile(r"\w+", re.UNICODE)


def word_count(text: str) -> int:
    """Words of a message in any language: Unicode word runs outside CJK scripts, and a word per
    four characters of CJK runs (Japanese has no spaces: パスワード is one word, a 26-character
    sentence about six)."""
    cjk = _CJK.findall(text)
    rest = _CJK.sub(" ", text)
    return len(_WORDS.findall(rest)) + sum(math.ceil(len(run) / 4) for run in cjk)


def _top3(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions and values of the three best columns per row (padded with the row's minimum - 1
    when there are fewer than three articles)."""
    n, m = x.shape
    if m < 3:
        pad = np.repeat(x.min(1, keepdims=True) - 1.0 if m else np.zeros((n, 1)), 3 - m, axis=1)
        x = np.hstack([x, pad])
    top = np.argsort(-x, axis=1, kind="stable")[:, :3]
    return top, np.take_along_axis(x, top, 1)


def features(scores: Mapping[str, np.ndarray], cfg: FusionConfig, native: np.ndarray | None,
             n_words: Sequence[int], fused: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features: questions x names, fused scores: questions x articles, feature names) for
    questions whose system scores (questions x articles each) are ``scores`` (``fused``: their
    fused scores when the caller has them already). A change here changes what a snapshot's
    confidence models read: bump knowledge_base.builder.SCORER_VERSION so snapshots are rebuilt."""
    scores = {n: np.atleast_2d(np.asarray(s, dtype=np.float32)) for n, s in scores.items()}
    fused = np.atleast_2d(cfg.fuse(scores, native) if fused is None else fused)
    n, n_articles = fused.shape
    rows = np.arange(n)
    order, vals = _top3(fused)
    top = order[:, 0]
    cols: dict[str, np.ndarray] = {
        "fused_top": vals[:, 0], "fused_margin": vals[:, 0] - vals[:, 1], "fused_gap3": vals[:, 0] - vals[:, 2]}
    for name in sorted(nm for nm, w in cfg.weights.items() if w > 0 and nm in scores):
        mu, sd = cfg.stats[name]
        z = (scores[name] - mu) / sd
        _, zv = _top3(z)
        cols[f"{name}_at_top"] = z[rows, top]
        cols[f"{name}_max"] = zv[:, 0]
        cols[f"{name}_margin"] = zv[:, 0] - zv[:, 1]
        if name in CLASSIFIER_SYSTEMS:
            p = np.clip(scores[name], 1e-12, 1.0)
            cols[f"{name}_entropy"] = -(p * np.log(p)).sum(1) / math.log(max(2, n_articles))
    cols["log_words"] = np.log1p(np.asarray(n_words, dtype=np.float32))
    if native is not None:
        nat = np.broadcast_to(np.atleast_2d(native), fused.shape)
        cols["native_top"] = nat[rows, top].astype(np.float32)
    names = list(cols)
    return np.stack([cols[k] for k in names], axis=1).astype(np.float64), fused, names


# ---- the model of one language group -------------------------------------------------------------
def _fit_lr(X: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    if y.all() or not y.any():  # one class only: a constant
        p = 1.0 - 1e-3 if y.all() else 1e-3
        return np.zeros(X.shape[1]), math.log(p / (1 - p))
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=C, max_iter=2000).fit(X, y)
    return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


@dataclass
class GroupModel:
    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    coef1: np.ndarray
    bias1: float
    coef3: np.ndarray
    bias3: float
    answer: float = 0.5  # p1 at or above: answer (unless a runner-up is within ``margin``)
    margin: float = 0.0  # fused score gap to the runner-up under which an answer becomes a choice
    clarify: float = 1.01  # p3 at or above (and p1 below ``answer``): offer the top articles
    calibrated_on: str = ""
    n_questions: int = 0
    # (answer, margin, clarify) for messages of at most TOPIC_WORDS words, when the calibration
    # questions had enough of them: a word like "refund" or "iptal" names a topic, and the articles
    # on it are better offered than an "I don't know"
    topic: tuple[float, float, float] | None = None

    def predict(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Z = (np.atleast_2d(F) - self.mean) / self.std
        return _sigmoid(Z @ self.coef1 + self.bias1), _sigmoid(Z @ self.coef3 + self.bias3)

    def decide(self, p1: float, p3: float, fused_margin: float, words: int | None = None) -> str:
        answer, margin, clarify = self.thresholds(words)
        if p1 >= answer:
            return ANSWER if fused_margin >= margin else CLARIFY
        return CLARIFY if p3 >= clarify else HANDOFF

    def thresholds(self, words: int | None) -> tuple[float, float, float]:
        if self.topic is not None and words is not None and words <= TOPIC_WORDS:
            return self.topic
        return self.answer, self.margin, self.clarify

    def to_dict(self) -> dict:
        return {"names": self.names, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "coef1": self.coef1.tolist(), "bias1": self.bias1, "coef3": self.coef3.tolist(),
                "bias3": self.bias3, "answer": self.answer, "margin": self.margin, "clarify": self.clarify,
                "calibrated_on": self.calibrated_on, "n_questions": self.n_questions,
                "topic": list(self.topic) if self.topic is not None else None}

    @classmethod
    def from_dict(cls, d: dict) -> "GroupModel":
        arr = lambda k: np.asarray(d[k], dtype=np.float64)  # noqa: E731
        return cls(list(d["names"]), arr("mean"), arr("std"), arr("coef1"), float(d["bias1"]), arr("coef3"),
                   float(d["bias3"]), float(d["answer"]), float(d["margin"]), float(d["clarify"]),
                   d.get("calibrated_on", ""), int(d.get("n_questions", 0)),
                   tuple(float(x) for x in d["topic"]) if d.get("topic") else None)


@dataclass
class Calibration:
    """Calibration questions of one language group, scored: features and what the right outcome is."""
    F: np.ndarray  # questions x features
    names: list[str]
    top1_right: np.ndarray  # in scope and the fused top article is right
    top3_right: np.ndarray  # in scope and the right article is among the fused top three
    unsupported: np.ndarray  # the knowledge base has no answer: handing off is right
    units: np.ndarray  # questions that must stay in one fold (a question and its copy without its article)
    langs: np.ndarray  # each question's language
    words: np.ndarray  # each question's word_count
    copies: np.ndarray  # an answerable question again, with its right articles taken away

    @property
    def fused_margin(self) -> np.ndarray:
        return self.F[:, self.names.index("fused_margin")]

    def subset(self, rows: np.ndarray) -> "Calibration":
        return Calibration(self.F[rows], self.names, self.top1_right[rows], self.top3_right[rows],
                           self.unsupported[rows], self.units[rows], self.langs[rows], self.words[rows],
                           self.copies[rows])

    @property
    def topics(self) -> np.ndarray:
        return self.words <= TOPIC_WORDS


def outcomes(cal: Calibration, p1: np.ndarray, p3: np.ndarray, answer: float, margin: float, clarify: float
             ) -> dict[str, float]:
    """Rates of every outcome of the decision with these thresholds on these questions."""
    ans = (p1 >= answer) & (cal.fused_margin >= margin)
    clar = ((p1 >= answer) & ~ans) | ((p1 < answer) & (p3 >= clarify))
    ins = ~cal.unsupported
    n_in, n_out = max(1, int(ins.sum())), max(1, int(cal.unsupported.sum()))
    right = (ans & cal.top1_right) | (clar & cal.top3_right)
    return {"in_scope_accuracy": float((right & ins).sum() / n_in),
            "wrong_answer_rate": float(((ans | clar) & ~right & ins).sum() / n_in),
            "clarify_rate": float((clar & ins).sum() / n_in),
            "in_scope_handoff_rate": float((~ans & ~clar & ins).sum() / n_in),
            "unsupported_answered_rate": float(((ans | clar) & cal.unsupported).sum() / n_out),
            "oos_recall": float((~ans & ~clar & cal.unsupported).sum() / n_out)}


def objective(o: Mapping[str, float]) -> float:
    """knowledge_base.evaluate.calibrate's objective."""
    return 0.5 * (o["in_scope_accuracy"] - 2 * o["wrong_answer_rate"] - 0.25 * o["clarify_rate"]) \
        + 0.5 * o["oos_recall"]


def choose_thresholds(cal: Calibration, p1: np.ndarray, p3: np.ndarray, max_handoff: float = 1.0,
                      max_wrong: float = 1.0) -> tuple[float, float, float, float]:
    """(answer, margin, clarify, objective value): the thresholds maximising ``objective`` among
    those that answer at most ``max_wrong`` of the in-scope questions wrongly and hand off at most
    ``max_handoff`` of them. When no thresholds keep both, the wrong answers are kept down and more is
    handed off (a knowledge base that cannot answer well must not guess); when none keeps even that,
    the objective alone decides. A vectorised grid."""
    ins, oos = ~cal.unsupported, cal.unsupported
    qs = np.linspace(0, 1, 41)
    t1s = np.unique(np.round(np.concatenate([np.quantile(p1, qs), [1.01, MIN_ANSWER],
                                              np.quantile(p1[ins], np.linspace(0, 0.5, 101)) if ins.any() else []]), 6))
    t1s = t1s[t1s >= MIN_ANSWER]
    t3s = np.unique(np.round(np.concatenate([np.quantile(p3, qs[::2]), [1.01],
                                              np.quantile(p3[ins], np.linspace(0, 0.5, 26)) if ins.any() else []]), 6))
    fm = cal.fused_margin
    ins_m = fm[ins] if ins.any() else fm
    margins = np.unique(np.round([0.0, *np.quantile(ins_m, [0.05, 0.1, 0.2])], 6))
    n_in, n_out = max(1, int(ins.sum())), max(1, int(oos.sum()))
    # best thresholds keeping both limits / the wrong answers only / neither
    best = [(MIN_ANSWER, 0.0, 1.01, -np.inf)] * 3
    ge1 = p1[None, :] >= t1s[:, None]  # T1 x N
    ge3 = p3[None, :] >= t3s[:, None]  # T3 x N
    for m in margins:
        far = fm >= m
        ans = ge1 & far[None, :]  # T1 x N
        clar_hi = ge1 & ~far[None, :]
        for j, t3 in enumerate(t3s):
            clar = clar_hi | (~ge1 & ge3[j][None, :])
            right = (ans & cal.top1_right) | (clar & cal.top3_right)
            acc = (right & ins).sum(1) / n_in
            wrong = ((ans | clar) & ~right & ins).sum(1) / n_in
            clar_r = (clar & ins).sum(1) / n_in
            handoff = (~ans & ~clar & ins).sum(1) / n_in
            oos_r = (~ans & ~clar & oos).sum(1) / n_out if oos.any() else np.zeros(len(t1s))
            val = 0.5 * (acc - 2 * wrong - 0.25 * clar_r) + 0.5 * oos_r
            few_wrong = wrong <= max_wrong + 1e-9
            for k, ok in enumerate((few_wrong & (handoff <= max_handoff + 1e-9), few_wrong, np.ones_like(few_wrong))):
                v = np.where(ok, val, -np.inf)
                i = int(np.argmax(v))
                if v[i] > best[k][3] + 1e-12:
                    best[k] = (float(t1s[i]), float(m), float(t3), float(v[i]))
    return next(b for b in best if np.isfinite(b[3]))


def fused_threshold(cal: Calibration) -> float:
    """The fused top score above which answering outright does best on these questions (the same
    objective, no clarification): a bar on the fused scale for the runner-up offered after an
    unhelpful answer."""
    top = cal.F[:, cal.names.index("fused_top")]
    ones = np.ones(len(top))
    best_t, best_v = float(np.max(top)) + 1e-4, -1e9
    for t in np.unique(np.round(np.quantile(top, np.linspace(0, 1, 101)), 6)):
        v = objective(outcomes(cal, (top >= t).astype(float), -ones, 0.5, -np.inf, 1.01))
        if v > best_v + 1e-12:
            best_t, best_v = float(t), v
    return round(best_t, 6)


MAX_HANDOFF = 0.10  # the share of answerable questions the thresholds may hand off (on calibration)
MAX_WRONG = 0.05  # ... and answer wrongly; this one wins when both cannot be kept
MIN_TOPICS = 12  # answerable topic messages (TOPIC_WORDS) the calibration needs for topic thresholds
# Never answer outright what is more likely wrong than right: below this p1 the top articles are
# offered (when p3 allows) or the question is handed off.
MIN_ANSWER = 0.5


def fit_group(cal: Calibration, C: float = 0.3, folds: int = 5, seed: int = 0, source: str = "",
              max_handoff: float = MAX_HANDOFF) -> tuple[GroupModel, dict]:
    """The group's two models (fitted on every calibration question) and thresholds chosen on
    out-of-fold predictions; also returns those predictions' outcomes at those thresholds (an honest
    estimate), for the group and per language."""
    F = cal.F
    mean, std = F.mean(0), F.std(0)
    std = np.where(std > 1e-9, std, 1.0)
    Z = (F - mean) / std
    p1 = np.zeros(len(F))
    p3 = np.zeros(len(F))
    units = np.unique(cal.units)
    fold_of_unit = dict(zip(units.tolist(), (np.random.default_rng(seed).permutation(len(units)) % folds).tolist()))
    fold = np.array([fold_of_unit[u] for u in cal.units.tolist()])
    for k in range(folds):
        test = fold == k
        if not test.any() or test.all():
            continue
        c1, b1 = _fit_lr(Z[~test], cal.top1_right[~test], C)
        c3, b3 = _fit_lr(Z[~test], cal.top3_right[~test], C)
        p1[test] = _sigmoid(Z[test] @ c1 + b1)
        p3[test] = _sigmoid(Z[test] @ c3 + b3)
    answer, margin, clarify, _ = choose_thresholds(cal, p1, p3, max_handoff, MAX_WRONG)
    per_row = np.tile([answer, margin, clarify], (len(F), 1))
    topic = None
    # Topic messages are calibrated without the copies whose articles were taken away: for a word like
    # "payment", the other payment articles are a fair offer when the one it meant is missing. The
    # unanswerable ones they must be told apart from are topics the help centre has nothing on.
    t = cal.topics & ~cal.copies
    if (t & ~cal.unsupported).sum() >= MIN_TOPICS and (t & cal.unsupported).sum() >= MIN_TOPICS // 4:
        topic = choose_thresholds(cal.subset(t), p1[t], p3[t], max_handoff, MAX_WRONG)[:3]
        per_row[cal.topics] = topic  # as a topic message is decided, copies included
    c1, b1 = _fit_lr(Z, cal.top1_right, C)
    c3, b3 = _fit_lr(Z, cal.top3_right, C)
    model = GroupModel(cal.names, mean, std, c1, b1, c3, b3, answer, margin, clarify, source, len(F), topic)
    report = outcomes(cal, p1, p3, per_row[:, 0], per_row[:, 1], per_row[:, 2])
    report["per_lang"] = {lang: outcomes(cal.subset(cal.langs == lang), p1[cal.langs == lang], p3[cal.langs == lang],
                                         *per_row[cal.langs == lang].T)
                          for lang in sorted(set(cal.langs.tolist())) if lang}
    if t.any():
        report["topics"] = outcomes(cal.subset(t), p1[t], p3[t], *per_row[t].T)
    return model, report


def auroc_of(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    from .evaluate import auroc

    return auroc(list(map(float, scores_in)), list(map(float, scores_out)))


def state_of(models: Mapping[str, GroupModel]) -> dict:
    return {g: m.to_dict() for g, m in models.items()}


def models_from_state(state: Mapping[str, dict] | None) -> dict[str, GroupModel]:
    return {g: GroupModel.from_dict(d) for g, d in (state or {}).items()}


__all__ = ["Calibration", "GroupModel", "features", "fit_group", "outcomes", "objective", "choose_thresholds",
           "models_from_state", "state_of", "HANDOFF", "CLARIFY_OPTIONS"]
