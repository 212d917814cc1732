"""A deterministic stand-in encoder for unit tests of the index machinery: bag of character
trigrams hashed into a fixed random projection, so texts sharing words are close."""
from __future__ import annotations

import hashlib

import numpy as np


class HashingEncoder:
    def __init__(self, dim: int = 64, name: str = "fake-hashing"):
        self.dim = dim
        self.name = f"{name}-{dim}"
        self.calls: list[int] = []  # batch sizes, to check what was (re-)embedded

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        t = f"  {text.lower()}  "
        for i in range(len(t) - 2):
            h = int.from_bytes(hashlib.md5(t[i:i + 3].encode()).digest()[:4], "little")
            v[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        self.calls.append(len(texts))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._vec(t) for t in texts]).astype(np.float32)

    @property
    def embedded(self) -> int:
        return sum(self.calls)


def article(id_: str, title: str, body: str, locale: str = "en", group: str | None = None,
            questions: tuple[str, ...] = (), status: str = "published"):
    from knowledge_base.articles import Article

    return Article(id=id_, title=title, body=body, locale=locale, group=group or id_.rsplit("-", 1)[0],
                   questions=questions, status=status)
