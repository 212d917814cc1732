from knowledge_base.decision import ANSWER, CLARIFY, HANDOFF, DecisionPolicy
from knowledge_base.evaluate import Question, auroc, calibrate, decision_metrics, metrics


def test_decide_answer_clarify_handoff():
    p = DecisionPolicy(answer_threshold=0.5, clarify_margin=0.05)
    assert p.decide([]) == (HANDOFF, 0)
    assert p.decide([0.49, 0.2]) == (HANDOFF, 0)
    assert p.decide([0.8, 0.6]) == (ANSWER, 1)
    assert p.decide([0.8, 0.78, 0.77, 0.76]) == (CLARIFY, 3)
    assert p.decide([0.52, 0.49]) == (ANSWER, 1)  # runner-up below threshold: not an option
    assert DecisionPolicy.from_dict(p.to_dict()) == p


def test_auroc_matches_hand_computed_values():
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5, 0.5], [0.5]) == 0.5
    assert abs(auroc([0.9, 0.4], [0.5, 0.1]) - 0.75) < 1e-9


def test_metrics_and_calibration_separate_answerable_from_unanswerable():
    qs = [Question("a", "A"), Question("b", "B"), Question("c", "C"), Question("x", None), Question("y", None)]
    rankings = [(["A", "B"], [0.9, 0.3]), (["A", "B"], [0.7, 0.65]), (["C", "A"], [0.8, 0.2]),
                (["A", "B"], [0.4, 0.1]), (["B", "A"], [0.5, 0.2])]
    m = metrics(qs, rankings)
    assert m["top1"] == 2 / 3 and m["recall@3"] == 1.0 and abs(m["mrr"] - (1 + 0.5 + 1) / 3) < 1e-9
    assert m["auroc"] == 1.0
    pol = calibrate(qs, rankings)
    d = decision_metrics(qs, rankings, pol)
    assert d["oos_recall"] == 1.0
    assert d["wrong_answer_rate"] == 0.0  # question b is clarified (gold among the options), not answered wrongly
    assert d["in_scope_accuracy"] == 1.0
