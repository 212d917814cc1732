"""Floors for a help centre written in English only, asked in German, Turkish and Japanese.

The product's own build (knowledge_base.builder.ensure_index, what `make run` and
`python -m knowledge_base import` do) indexes the English articles of data/knowledge_base, once
calibrated on data/eval/sample_validation.jsonl and once on nothing but its articles (the
self-calibration a `--kb` import without labelled questions gets). The test questions
(data/eval/sample_test.jsonl, never tuned on) then ask it in four languages. Floors sit under what
bench/quality_eval.py measured ("sample-en" and "sample-en/self" in bench/results/quality.json):
a change that breaks cross-lingual ranking, or that answers wrongly where it should hand off,
fails here.
"""
import os

import pytest

from knowledge_base.articles import load_markdown_folder, published
from knowledge_base.builder import ensure_index
from knowledge_base.config import PROJECT_ROOT, KBSettings
from knowledge_base.encoders import load_encoder
from knowledge_base.evaluate import load_questions, search_metrics
from knowledge_base.live import LiveKnowledgeBase

pytestmark = pytest.mark.slow

# measured (labelled calibration): top-1 de .898 tr .814 ja .897; wrong answers de .034 tr .051 ja .017
TOP1 = {"de": 0.85, "tr": 0.75, "ja": 0.85}
MAX_WRONG_LABELLED = 0.08
# measured: wrong-answer share .099 (labelled) and .030 (self-calibrated); out-of-scope handed off .754 / .939
MAX_WRONG_SHARE = {"labelled": 0.15, "self": 0.06}
MIN_OOS_RECALL = {"labelled": 0.65, "self": 0.85}


def english_only_searcher(index_dir, calibration: str):
    env = {**os.environ, "KB_INDEX_DIR": str(index_dir), "KB_CALIBRATION_FILE": calibration}
    settings = KBSettings.from_env(env)
    articles = [a for a in published(load_markdown_folder(PROJECT_ROOT / "data" / "knowledge_base").articles)
                if a.locale == "en"]
    assert len({a.group for a in articles}) >= 40
    ensure_index(settings, articles=articles, show_progress=False)
    live = LiveKnowledgeBase(settings.index_dir, load_encoder(settings.encoder, settings.encoder_threads),
                             settings.default_locale, settings.encoder_threads)
    assert live.refresh(), live.last_error
    return live.searcher


@pytest.fixture(scope="module", params=["labelled", "self"])
def metrics(request, tmp_path_factory):
    calibration = str(PROJECT_ROOT / "data/eval/sample_validation.jsonl") if request.param == "labelled" else "off"
    searcher = english_only_searcher(tmp_path_factory.mktemp(f"index-{request.param}"), calibration)
    source = searcher.snapshot.manifest.get("calibration", {}).get("source")
    assert source == ("labelled questions" if request.param == "labelled" else "the articles' own questions"), source
    return request.param, search_metrics(searcher, load_questions(PROJECT_ROOT / "data/eval/sample_test.jsonl"))


def test_each_language_finds_the_english_article(metrics):
    mode, m = metrics
    for lang, floor in TOP1.items():
        got = m["per_lang"][lang]
        assert got["top1"] >= floor, (mode, lang, got)
        if mode == "labelled":
            assert got["wrong_answer_rate"] <= MAX_WRONG_LABELLED, (mode, lang, got)


def test_questions_it_cannot_answer_are_handed_off_not_answered(metrics):
    mode, m = metrics
    assert m["wrong_share_of_answers"] <= MAX_WRONG_SHARE[mode], (mode, m)
    assert m["oos_recall"] >= MIN_OOS_RECALL[mode], (mode, m)
