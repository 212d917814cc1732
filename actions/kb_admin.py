"""Internal routes of the action server for the editors' workspace (the gateway calls them; the
action server has the encoders, the gateway has none):

  POST /kb/sync  {"articles": [article...]}    the FULL published set -> a new index snapshot
      (vectors of unchanged entries reused, hybrid scorer refitted with the current statistics and
      decision policy), committed atomically (CURRENT) and swapped into the live knowledge base before
      the answer: {"changed", "version", "articles", "entries", "embedded_vectors", "ms"}.
      An unchanged set answers at once with "changed": false. Serialised by an asyncio lock and a
      file lock on the index folder (several replicas share one folder).
  POST /kb/sentiment {"texts": [...]} -> {"results": [{"label", "p_negative", "p_positive", "severity"}]}
      (knowledge_base.sentiment; 503 while the model is still being trained)
  POST /kb/try   {"question", "language"?, "draft"?: article}
      -> {"current": result, "with_draft": result | null} where result is
      {"decision", "hits": [{"article_id", "group", "title", "locale", "score", "link"}], "version"};
      the draft is applied in memory only.

Both need ``Authorization: Bearer <INTERNAL_TOKEN>`` (401 otherwise). The token comes from the
INTERNAL_TOKEN environment variable or, when that is empty, the file ``$VAR_DIR/internal_token`` that
the gateway generates (``make run`` passes it to both processes).
"""
from __future__ import annotations

import asyncio
import fcntl
import hmac
import logging
import os
import threading
import time
from pathlib import Path

from knowledge_base.articles import Article, ArticleError, validate_record
from knowledge_base.config import PROJECT_ROOT

from . import runtime

log = logging.getLogger(__name__)
TOKEN_FILE = "internal_token"
MAX_TRY_HITS = 5


def internal_token() -> str:
    token = os.environ.get("INTERNAL_TOKEN", "").strip()
    if token:
        return token
    var = Path(os.environ.get("VAR_DIR") or "var")
    path = (var if var.is_absolute() else PROJECT_ROOT / var) / TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _authorised(request) -> bool:
    expected = internal_token()
    supplied = request.headers.get("authorization", "")
    return bool(expected) and hmac.compare_digest(supplied.encode(), f"Bearer {expected}".encode())


_sentiment: dict = {}
_sentiment_lock = threading.Lock()


def sentiment_model():
    """(model, encoder), or (None, None) while the model is trained (in a thread, once) because the
    cache (``python -m bot setup`` builds it) was missing."""
    if "model" in _sentiment:
        return _sentiment["model"], _sentiment["encoder"]

    def build():
        from knowledge_base import sentiment
        from knowledge_base.encoders import load_encoder

        try:
            encoder = load_encoder("use-multilingual", 1)
            model = sentiment.ensure_model(encoder, log=log.info)
            _sentiment.update(model=model, encoder=encoder)
        except Exception:  # noqa: BLE001 - answered 503; tried again on the next request
            log.exception("sentiment model could not be loaded")
        finally:
            _sentiment.pop("building", None)

    with _sentiment_lock:
        if "building" not in _sentiment and "model" not in _sentiment:
            _sentiment["building"] = True
            threading.Thread(target=build, name="sentiment", daemon=True).start()
    return None, None


def _articles(raw) -> list[Article]:
    if not isinstance(raw, list):
        raise ArticleError("'articles' must be a list")
    out, seen = [], set()
    for i, rec in enumerate(raw):
        try:
            art = validate_record({**rec, "status": "published"} if isinstance(rec, dict) else rec)
        except ArticleError as exc:
            raise ArticleError(f"articles[{i}]: {exc}") from None
        if art.id in seen:
            raise ArticleError(f"articles[{i}]: duplicate id {art.id!r}")
        seen.add(art.id)
        out.append(art)
    return out


class IndexAdmin:
    """Builds snapshots for the live knowledge base (one at a time per process and per folder)."""

    def __init__(self):
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    @staticmethod
    def _parts():
        kb, settings = runtime.live(), runtime._state["settings"]
        if kb is None or settings is None or not kb.ready:
            raise runtime.KnowledgeBaseUnavailable("knowledge base not loaded yet")
        secondary = None
        if settings.retrieval == "hybrid":
            secondary = kb.extra_encoders.get("minilm")
            if secondary is None:
                from knowledge_base.encoders import load_encoder

                secondary = kb.extra_encoders["minilm"] = load_encoder(settings.secondary_encoder,
                                                                        settings.encoder_threads)
        return kb, settings, secondary

    def sync(self, articles: list[Article]) -> dict:
        from knowledge_base.builder import mode_key, prepare_update
        from knowledge_base.snapshot import commit_snapshot, load_current, source_hash

        t0 = time.perf_counter()
        kb, settings, secondary = self._parts()
        root = Path(settings.index_dir)
        root.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, (root / ".sync.lock").open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            current = load_current(root)
            key = source_hash(articles, kb.encoder.name, mode_key(settings, secondary))
            if current is not None and current.manifest.get("source_hash") == key:
                kb.refresh()
                return {"changed": False, "version": current.version, "articles": len(articles),
                        "ms": round((time.perf_counter() - t0) * 1000, 1)}
            t1 = time.perf_counter()
            snap = prepare_update(settings, articles, kb.encoder, secondary, current)
            t2 = time.perf_counter()
            committed = commit_snapshot(root, snap)
        t3 = time.perf_counter()
        kb.refresh()  # swap it in now rather than at the next poll
        now = time.perf_counter()
        ms = round((now - t0) * 1000, 1)
        steps = {"load": t1 - t0, "prepare": t2 - t1, "commit": t3 - t2, "swap": now - t3}
        log.info("index synced: %d articles, %d entries embedded, %.0f ms", len(articles),
                 snap.manifest["embedded_vectors"], ms)
        return {"changed": True, "version": committed.version, "articles": len(articles),
                "entries": snap.manifest["entries"], "embedded_vectors": snap.manifest["embedded_vectors"],
                "ms": ms, "steps_ms": {k: round(v * 1000, 1) for k, v in steps.items()}}

    def try_question(self, question: str, lang: str | None, draft: Article | None) -> dict:
        from knowledge_base.builder import prepare_update
        from knowledge_base.search import Searcher

        kb, settings, secondary = self._parts()
        searcher = kb.searcher
        out = {"current": _result(searcher.search(question, lang, k=MAX_TRY_HITS), None), "with_draft": None}
        if draft is not None:
            arts = [a for a in searcher.snapshot.articles.values() if a.id != draft.id] + [draft]
            snap = prepare_update(settings, arts, kb.encoder, secondary, searcher.snapshot)
            trial = Searcher(snap, kb.encoder, settings.default_locale, extra_encoders=kb.extra_encoders)
            out["with_draft"] = _result(trial.search(question, lang, k=MAX_TRY_HITS), draft.id)
        return out


def _result(result, draft_id: str | None) -> dict:
    return {"decision": result.decision, "version": result.version,
            "hits": [{"article_id": h.article_id, "group": h.group, "title": h.title, "locale": h.locale,
                      "score": round(h.score, 4), "link": h.link, "draft": h.article_id == draft_id}
                     for h in result.hits[:MAX_TRY_HITS]]}


def register(app) -> None:
    """Add /kb/sync, /kb/try, /kb/embed and /kb/sentiment to the action server's Sanic app."""
    from sanic import response

    admin = IndexAdmin()
    sentiment_model()  # load (or train) the sentiment model now, in a thread, not at the first message
    # A sync usually takes a second or two, but one that must rebuild (the current snapshot was built
    # another way, e.g. dense, so there are no vectors or statistics to reuse) can take minutes.
    app.config.RESPONSE_TIMEOUT = max(app.config.RESPONSE_TIMEOUT, 900)

    async def body_of(request):
        if not _authorised(request):
            return None, response.json({"error": "missing or wrong internal token"}, status=401)
        try:
            body = request.json
        except Exception:  # sanic raises its own BadRequest for invalid JSON
            body = None
        if not isinstance(body, dict):
            return None, response.json({"error": "the body must be a JSON object"}, status=400)
        return body, None

    @app.post("/kb/sync")
    async def kb_sync(request):
        body, err = await body_of(request)
        if err:
            return err
        try:
            articles = _articles(body.get("articles"))
        except ArticleError as exc:
            return response.json({"error": str(exc)}, status=400)
        if not articles:
            return response.json({"error": "refusing to publish an empty knowledge base"}, status=422)
        async with admin._lock:
            try:
                out = await asyncio.get_running_loop().run_in_executor(None, admin.sync, articles)
            except runtime.KnowledgeBaseUnavailable as exc:
                return response.json({"error": str(exc)}, status=503)
        return response.json(out)

    @app.post("/kb/embed")
    async def kb_embed(request):
        """Sentence vectors of the primary (multilingual) encoder, for the editors' gaps topics."""
        body, err = await body_of(request)
        if err:
            return err
        texts = body.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or len(texts) > 5000:
            return response.json({"error": "'texts' must be a list of at most 5000 strings"}, status=400)
        kb = runtime.live()
        if kb is None or not kb.ready:
            return response.json({"error": "knowledge base not loaded yet"}, status=503)
        vectors = await asyncio.get_running_loop().run_in_executor(
            None, lambda: kb.encoder.encode([t[:500] for t in texts]) if texts else [])
        return response.json({"encoder": kb.encoder.name, "vectors": [[round(float(x), 6) for x in v] for v in vectors]})

    @app.post("/kb/sentiment")
    async def kb_sentiment(request):
        """Sentiment and severity of customer messages (knowledge_base.sentiment), for the gateway."""
        body, err = await body_of(request)
        if err:
            return err
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or len(texts) > 100 or not all(isinstance(t, str) for t in texts):
            return response.json({"error": "'texts' must be a list of 1 to 100 strings"}, status=400)
        model, encoder = sentiment_model()
        if model is None:
            return response.json({"error": "the sentiment model is still being trained"}, status=503)
        results = await asyncio.get_running_loop().run_in_executor(
            None, lambda: model.predict(encoder.encode([t[:1000] for t in texts])))
        return response.json({"results": results})

    @app.post("/kb/try")
    async def kb_try(request):
        body, err = await body_of(request)
        if err:
            return err
        question = body.get("question")
        if not isinstance(question, str) or not question.strip():
            return response.json({"error": "'question' is required"}, status=400)
        lang = body.get("language") or None
        if lang is not None and not isinstance(lang, str):
            return response.json({"error": "'language' must be a string"}, status=400)
        draft = None
        if body.get("draft") is not None:
            try:
                draft = validate_record({**body["draft"], "status": "published"}) \
                    if isinstance(body["draft"], dict) else validate_record(body["draft"])
            except ArticleError as exc:
                return response.json({"error": f"draft: {exc}"}, status=400)
        try:
            out = await asyncio.get_running_loop().run_in_executor(
                None, admin.try_question, question.strip()[:500], lang, draft)
        except runtime.KnowledgeBaseUnavailable as exc:
            return response.json({"error": str(exc)}, status=503)
        return response.json(out)
