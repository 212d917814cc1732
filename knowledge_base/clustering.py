"""Topics from questions: a deterministic, single-pass clustering of sentence embeddings.

    cluster_texts(vectors, texts, langs, threshold=DEFAULT_THRESHOLD) -> list[Topic]

Questions are taken in order; each joins the topic whose centroid is most similar (cosine) if that
similarity is at least ``threshold``, otherwise it starts a new topic (centroid = the normalised mean
of the members). The result depends on the order (B may join A only once C has); a second pass that
merged topics with close centroids was tried and chained unrelated topics together (homogeneity .300
instead of .765 at .45 on the questions below), so it is not used. With the multilingual encoder (USE-m) a question and its
translations land together, so a topic can span languages. Topics come back largest first (ties:
first seen first); each has a label (the member closest to the centroid), its count, its languages
(most frequent first), up to ``max_examples`` example questions (closest first, distinct texts) and
the indices of its members.

The threshold .45 was chosen on the product's validation questions (data/eval/sample_validation.jsonl,
43 translation groups in four languages, gold = group): thresholds .35/.40/.45/.50/.55/.60 gave
21/36/50/72/95/125 topics with homogeneity .478/.591/.765/.884/.960/.991, completeness
.801/.836/.862/.850/.826/.791 and V-measure .598/.692/.811/.866/.888/.879. For gaps an editor wants one
topic per missing article rather than several, so the choice is the highest completeness with a topic
count near the true one (.45: 50 topics for 43 groups), at some cost in homogeneity.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

DEFAULT_THRESHOLD = 0.45


@dataclass
class Topic:
    label: str
    count: int
    languages: list[str]
    examples: list[str]
    indices: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"label": self.label, "count": self.count, "languages": self.languages,
                "examples": self.examples, "indices": self.indices}


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


def cluster_texts(vectors: np.ndarray, texts: list[str], langs: list[str | None],
                  threshold: float = DEFAULT_THRESHOLD, max_examples: int = 5) -> list[Topic]:
    if len(texts) != len(vectors) or len(langs) != len(texts):
        raise ValueError("vectors, texts and langs must have the same length")
    if not texts:
        return []
    vecs = _normalise(np.asarray(vectors, dtype=np.float32))
    sums: list[np.ndarray] = []
    members: list[list[int]] = []
    for i, v in enumerate(vecs):
        if sums:
            cents = _normalise(np.stack(sums))
            sims = cents @ v
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                sums[best] = sums[best] + v
                members[best].append(i)
                continue
        sums.append(v.copy())
        members.append([i])
    topics = []
    for total, idx in zip(sums, members):
        centre = total / (np.linalg.norm(total) or 1.0)
        order = sorted(idx, key=lambda j: (-float(vecs[j] @ centre), j))
        examples: list[str] = []
        for j in order:
            if texts[j] not in examples:
                examples.append(texts[j])
            if len(examples) == max_examples:
                break
        languages = [lang for lang, _ in Counter(x for x in (langs[j] for j in idx) if x).most_common()]
        topics.append(Topic(texts[order[0]], len(idx), languages, examples, sorted(idx)))
    topics.sort(key=lambda t: (-t.count, t.indices[0]))
    return topics
