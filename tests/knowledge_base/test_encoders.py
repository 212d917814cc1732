"""The encoders' memory of recent texts: the same vectors as computing them, computed once."""
from __future__ import annotations

import numpy as np
import pytest

from knowledge_base.encoders import RecentVectors, load_encoder


def fake_compute(calls: list):
    def compute(batch: list[str]) -> np.ndarray:
        calls.append(list(batch))
        return np.array([[float(len(t)), float(ord(t[0]))] for t in batch], dtype=np.float32)
    return compute


def test_a_text_asked_again_is_not_computed_again_and_gets_the_same_row():
    calls: list = []
    recent = RecentVectors(size=3)
    first = recent.encode(["kündigen", "refund"], fake_compute(calls))
    again = recent.encode(["refund", "kündigen", "refund"], fake_compute(calls))
    assert calls == [["kündigen", "refund"]]
    assert np.array_equal(again, first[[1, 0, 1]])
    again[0, 0] = -1  # a caller changing its rows does not change what is remembered
    assert recent.encode(["refund"], fake_compute(calls))[0, 0] == len("refund")


def test_the_least_recently_used_text_is_forgotten_and_big_calls_are_not_remembered():
    calls: list = []
    recent = RecentVectors(size=2)
    recent.encode(["a"], fake_compute(calls))
    recent.encode(["b"], fake_compute(calls))
    recent.encode(["a"], fake_compute(calls))  # a is now the most recent
    recent.encode(["c"], fake_compute(calls))  # b goes
    recent.encode(["a", "b"], fake_compute(calls))
    assert calls == [["a"], ["b"], ["c"], ["b"]]
    many = [f"t{i}" for i in range(RecentVectors.MAX_TEXTS_PER_CALL + 1)]
    recent.encode(many, fake_compute(calls))
    recent.encode(many, fake_compute(calls))
    assert calls[-2:] == [many, many]


@pytest.mark.slow
def test_use_multilingual_gives_the_same_vector_from_memory():
    enc = load_encoder("use-multilingual", 1)
    fresh = enc.encode(["Wie kann ich mein Abo kündigen?", "ignored so the call is not remembered", "x", "y", "z"])[0]
    assert np.allclose(enc.encode(["Wie kann ich mein Abo kündigen?"])[0], fresh, atol=1e-6)
    assert np.allclose(enc.encode(["Wie kann ich mein Abo kündigen?"])[0], fresh, atol=1e-6)
