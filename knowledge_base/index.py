"""FAISS vector index with stable int64 ids.

Exact inner-product search for small knowledge bases; an IVF index above ``approx_threshold``
vectors (IVF keeps ``remove_ids``, which HNSW lacks, so an edit stays remove + add).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import faiss
import numpy as np

APPROX_THRESHOLD = 50_000


def stable_id(article_id: str, ordinal: int) -> int:
    """A 63-bit id that depends only on the article id and the entry's position."""
    digest = hashlib.blake2b(f"{article_id}#{ordinal}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


class VectorIndex:
    def __init__(self, dim: int, index: faiss.Index | None = None, kind: str = "flat", nprobe: int = 16):
        self.dim = dim
        self.kind = kind
        self.nprobe = nprobe
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray,
              approx_threshold: int = APPROX_THRESHOLD, nprobe: int | None = None) -> "VectorIndex":
        n = len(ids)
        if n >= approx_threshold:
            nlist = int(max(16, min(65536, 4 * math.sqrt(n))))
            quantizer = faiss.IndexFlatIP(dim)
            ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = vectors if n <= nlist * 64 else vectors[np.random.default_rng(0).choice(n, nlist * 64, replace=False)]
            ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
            # probing an eighth of the lists keeps recall against exact search high (bench/kb_search.py)
            index = cls(dim, faiss.IndexIDMap2(ivf), kind="ivf", nprobe=nprobe or max(16, nlist // 8))
        else:
            index = cls(dim)
        index.add(ids, vectors)
        return index

    def _set_nprobe(self) -> None:
        if self.kind == "ivf":
            faiss.extract_index_ivf(self._index).nprobe = self.nprobe

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vector dimension {vectors.shape[1]} != index dimension {self.dim}")
        self._index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self._index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._set_nprobe()
        k = max(1, min(k, self.count))
        if self.count == 0:
            return (np.zeros((len(queries), 0), dtype=np.float32), np.zeros((len(queries), 0), dtype=np.int64))
        return self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def clone(self) -> "VectorIndex":
        return VectorIndex(self.dim, faiss.clone_index(self._index), kind=self.kind, nprobe=self.nprobe)

    def save(self, path: str | Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: str | Path, dim: int, kind: str = "flat", nprobe: int = 16) -> "VectorIndex":
        index = faiss.read_index(str(path))
        if index.d != dim:
            raise ValueError(f"index at {path} has dimension {index.d}, manifest says {dim}")
        return cls(dim, index, kind=kind, nprobe=nprobe)
