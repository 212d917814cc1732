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
    gold: str | None
    lang: str | None = None


def load_questions(path: str | Path) -> list[Question]:
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                out.append(Question(str(d["text"]), d.get("gold"), d.get("lang")))
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


def rank_all(rank: Callable[[Question], Ranking], questions: Sequence[Question]) -> list[Ranking]:
    return [rank(q) for q in questions]
