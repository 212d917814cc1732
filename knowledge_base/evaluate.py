"""Retrieval metrics and threshold calibration over labelled questions.

A question is ``{"text", "gold": article/group id or null, "lang"?}``; gold null means the
knowledge base has no answer and the right behaviour is to hand off.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .decision import ANSWER, CLARIFY, DecisionPolicy


@dataclass(frozen=True)
class Question:
    text: str
    gold: str | tuple[str, ...] | None  # several: any of them is a right answer (e.g. a topic word)
    lang: str | None = None

    @property
    def golds(self) -> tuple[str, ...]:
        return () if self.gold is None else (self.gold,) if isinstance(self.gold, str) else tuple(self.gold)


def load_questions(path: str | Path) -> list[Question]:
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                gold = d.get("gold")
                if isinstance(gold, list):
                    if not gold or not all(isinstance(g, str) for g in gold):
                        raise TypeError("gold must be an id, a non-empty list of ids or null")
                    gold = tuple(gold)
                elif gold is not None and not isinstance(gold, str):
                    raise TypeError("gold must be an id, a non-empty list of ids or null")
                out.append(Question(str(d["text"]), gold, d.get("lang")))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: bad question line ({exc})") from None
    return out


# A ranking: (ids best first, scores best first); an id matches gold by equality.
Ranking = tuple[Sequence[str], Sequence[float]]


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Probability that a random in-scope top score beats a random out-of-scope one (ties count half)."""
    if not pos or not neg:
        return float("nan")
    pos_a, neg_a = np.asarray(pos), np.asarray(neg)
    allv = np.concatenate([pos_a, neg_a])
    ranks = allv.argsort().argsort().astype(float) + 1
    # average ranks for ties
    order = np.argsort(allv)
    sorted_v = allv[order]
    i = 0
    while i < len(sorted_v):
        j = i
        while j + 1 < len(sorted_v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        if j > i:
            ranks[order[i:j + 1]] = (i + j + 2) / 2
        i = j + 1
    r_pos = ranks[: len(pos_a)].sum()
    return float((r_pos - len(pos_a) * (len(pos_a) + 1) / 2) / (len(pos_a) * len(neg_a)))


def metrics(questions: Sequence[Question], rankings: Sequence[Ranking],
            policy: DecisionPolicy | None = None) -> dict:
    in_scope = [(q, r) for q, r in zip(questions, rankings) if q.gold is not None]
    oos = [(q, r) for q, r in zip(questions, rankings) if q.gold is None]
    top1 = r3 = mrr = 0.0
    for q, (ids, _) in in_scope:
        ids = list(ids)
        if ids[:1] == [q.gold]:
            top1 += 1
        if q.gold in ids[:3]:
            r3 += 1
        if q.gold in ids:
            mrr += 1.0 / (ids.index(q.gold) + 1)
    n = max(1, len(in_scope))
    out = {"questions": len(questions), "in_scope": len(in_scope), "out_of_scope": len(oos),
           "top1": top1 / n, "recall@3": r3 / n, "mrr": mrr / n}
    top = lambda r: float(r[1][0]) if len(r[1]) else -1.0  # noqa: E731
    out["auroc"] = auroc([top(r) for _, r in in_scope], [top(r) for _, r in oos])
    if policy is not None:
        out.update(decision_metrics(questions, rankings, policy))
    return out


def decision_metrics(questions: Sequence[Question], rankings: Sequence[Ranking], policy: DecisionPolicy) -> dict:
    """Outcomes of the answer/clarify/handoff decision.

    in-scope accuracy: answered with the right article, or asked to clarify with it among the options;
    out-of-scope recall/precision: handing off is the positive class.
    """
    correct_in = wrong_answer = handed_off_in = clarified = 0
    oos_handoff = oos_total = 0
    for q, (ids, scores) in zip(questions, rankings):
        decision, n = policy.decide(list(scores))
        if q.gold is None:
            oos_total += 1
            oos_handoff += decision not in (ANSWER, CLARIFY)
            continue
        if decision == ANSWER:
            if list(ids[:1]) == [q.gold]:
                correct_in += 1
            else:
                wrong_answer += 1
        elif decision == CLARIFY:
            clarified += 1
            if q.gold in list(ids[:n]):
                correct_in += 1
            else:
                wrong_answer += 1
        else:
            handed_off_in += 1
    n_in = max(1, len(questions) - oos_total)
    all_handoffs = oos_handoff + handed_off_in
    recall = oos_handoff / oos_total if oos_total else float("nan")
    precision = oos_handoff / all_handoffs if all_handoffs else float("nan")
    f1 = 2 * recall * precision / (recall + precision) if recall and precision and recall + precision else 0.0
    return {
        "in_scope_accuracy": correct_in / n_in,
        "wrong_answer_rate": wrong_answer / n_in,
        "clarify_rate": clarified / n_in,
        "in_scope_handoff_rate": handed_off_in / n_in,
        "oos_recall": recall, "oos_precision": precision, "oos_f1": f1,
        "answer_threshold": policy.answer_threshold, "clarify_margin": policy.clarify_margin,
    }


def calibrate(questions: Sequence[Question], rankings: Sequence[Ranking], source: str = "validation",
              margins: Iterable[float] = (0.0, 0.01, 0.02, 0.03, 0.05)) -> DecisionPolicy:
    """Pick the threshold and clarify margin that maximise correct outcomes on validation data.

    Objective: in-scope accuracy and out-of-scope recall weighted equally, with a wrong answer
    costing twice a needless hand-off (a confident wrong answer is worse than an honest hand-off)
    and each clarification costing a little (it is an extra turn for the customer).
    """
    tops = sorted({round(float(r[1][0]), 4) for r in rankings if len(r[1])})
    candidates = [t + 1e-4 for t in tops] + [tops[0] - 1e-4] if tops else [0.5]
    best, best_val = DecisionPolicy(calibrated_on=source), -1e9
    for margin in margins:
        for t in candidates:
            pol = DecisionPolicy(answer_threshold=round(t, 4), clarify_margin=margin, calibrated_on=source)
            m = decision_metrics(questions, rankings, pol)
            oos_r = m["oos_recall"] if m["oos_recall"] == m["oos_recall"] else 0.0
            val = 0.5 * (m["in_scope_accuracy"] - 2 * m["wrong_answer_rate"] - 0.25 * m["clarify_rate"]) \
                + 0.5 * oos_r
            if val > best_val + 1e-12:
                best, best_val = pol, val
    return best


def search_metrics(searcher, questions: Sequence[Question]) -> dict:
    """The product end to end: every question through ``searcher.assess`` (ranking, confidence and
    decision as a customer gets them). Gold may name an article id or its translation group.

    Ranking: top-1 / recall@3 / MRR over in-scope questions. Decision: in-scope accuracy (answered
    with the right article, or offered it among the choices), wrong answers (answered or offered
    choices without the right article; share of in-scope questions), clarifications and hand-offs
    (shares of in-scope questions), out-of-scope recall (share of unanswerable questions handed
    off), and the share of all answers that were wrong (in-scope wrong + unanswerable answered, over
    every question answered or clarified). AUROC: the confidence (or the top score when there is no
    confidence model) of in-scope against unanswerable questions. Also per language."""
    arts = searcher.snapshot.articles
    rows = []
    for q in questions:
        golds = frozenset(arts[g].group if g in arts else g for g in q.golds) or None
        ranked, decision, n, conf = searcher.assess(q.text, q.lang)
        groups = [g for g, _ in ranked]
        rows.append((q.lang, golds, groups, decision, n, conf if conf is not None else
                     (ranked[0][1] if ranked else float("-inf"))))
    out = _outcome_metrics(rows)
    out["per_lang"] = {lang: _outcome_metrics([r for r in rows if r[0] == lang])
                       for lang in sorted({r[0] for r in rows if r[0]})}
    return out


def _outcome_metrics(rows) -> dict:
    ins = [r for r in rows if r[1] is not None]
    oos = [r for r in rows if r[1] is None]
    n_in, n_out = max(1, len(ins)), max(1, len(oos))
    def rank_of(golds, groups) -> int:  # 1-based rank of the best-ranked right article, 0: none
        return next((i + 1 for i, g in enumerate(groups) if g in golds), 0)

    ranks = [rank_of(r[1], r[2]) for r in ins]
    top1 = sum(k == 1 for k in ranks)
    r3 = sum(0 < k <= 3 for k in ranks)
    mrr = sum(1.0 / k for k in ranks if k)
    right = wrong = clar = hand = 0
    for (_, golds, groups, decision, n, _), k in zip(ins, ranks):
        if decision == ANSWER:
            right += k == 1
            wrong += k != 1
        elif decision == CLARIFY:
            clar += 1
            right += 0 < k <= n
            wrong += not 0 < k <= n
        else:
            hand += 1
    oos_hand = sum(r[3] not in (ANSWER, CLARIFY) for r in oos)
    answered = len(rows) - hand - oos_hand
    return {"questions": len(rows), "in_scope": len(ins), "out_of_scope": len(oos),
            "top1": round(top1 / n_in, 4), "recall@3": round(r3 / n_in, 4), "mrr": round(mrr / n_in, 4),
            "auroc": round(auroc([r[5] for r in ins], [r[5] for r in oos]), 4) if ins and oos else None,
            "in_scope_accuracy": round(right / n_in, 4), "wrong_answer_rate": round(wrong / n_in, 4),
            "clarify_rate": round(clar / n_in, 4), "in_scope_handoff_rate": round(hand / n_in, 4),
            "oos_recall": round(oos_hand / n_out, 4) if oos else None,
            "wrong_share_of_answers": round((wrong + len(oos) - oos_hand) / max(1, answered), 4)}


def rank_all(rank: Callable[[Question], Ranking], questions: Sequence[Question]) -> list[Ranking]:
    return [rank(q) for q in questions]
