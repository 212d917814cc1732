"""From ranked articles to a decision: answer, clarify or hand off."""
from __future__ import annotations

from dataclasses import asdict, dataclass

ANSWER, CLARIFY, HANDOFF = "answer", "clarify", "handoff"


@dataclass(frozen=True)
class DecisionPolicy:
    # Below this top score nothing is good enough: hand off (say "I don't know" honestly).
    answer_threshold: float = 0.45
    # Above the threshold, when the runner-up is within this margin of the best, ask which one.
    clarify_margin: float = 0.02
    max_clarify_options: int = 3
    calibrated_on: str = "default"

    def decide(self, scores: list[float]) -> tuple[str, int]:
        """Return the decision and how many of the top articles it concerns."""
        if not scores or scores[0] < self.answer_threshold:
            return HANDOFF, 0
        close = 1
        for s in scores[1:self.max_clarify_options]:
            if s >= self.answer_threshold and scores[0] - s < self.clarify_margin:
                close += 1
        if close > 1:
            return CLARIFY, close
        return ANSWER, 1

    @property
    def next_best_floor(self) -> float:
        """The bar for offering the runner-up after the customer said the answer did not help: lower
        than answering outright (the customer asked for another try), on the policy's own scale."""
        return self.answer_threshold - max(0.05, 6 * self.clarify_margin)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DecisionPolicy":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)
