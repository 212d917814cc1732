"""The editors' API route table and its OpenAPI 3 document (``GET /api/openapi.json``).

The routes are registered from ROUTES, so the document lists exactly what is served. Routes that
other modules add under /api/editor (e.g. the gaps analysis) are picked up from ``app.router`` too:
they are documented from an ``openapi`` attribute on the handler (a partial operation object) or,
failing that, from the handler's docstring.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from . import gaps, live, publishing, transfer, tryout, views

S = "#/components/schemas/"


def ref(name: str) -> dict:
    return {"$ref": S + name}


def arr(schema: dict) -> dict:
    return {"type": "array", "items": schema}


STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
STRS = arr(STR)
PERSON = {"type": "object", "nullable": True, "properties": {"id": STR, "name": STR, "email": STR}}
SCHEMAS: dict[str, dict] = {
    "Error": {"type": "object", "required": ["error"], "properties": {
        "error": STR, "field": STR, "status": STR, "current_version": INT, "article": ref("ArticleDetail")}},
    "Version": {"type": "object", "properties": {
        "number": INT, "title": STR, "body": STR, "questions": STRS, "tags": STRS, "author": PERSON,
        "created_at": STR, "note": {"type": "string", "nullable": True}}},
    "ArticleSummary": {"type": "object", "properties": {
        "id": STR, "group": STR, "locale": STR, "status": {"type": "string", "enum": ["draft", "in_review",
                                                                                     "published", "archived"]},
        "title": STR, "tags": STRS, "head_version": INT, "published_version": {"type": "integer", "nullable": True},
        "live": BOOL, "publish_at": {"type": "string", "nullable": True}, "updated_at": STR, "updated_by": PERSON,
        "group_locales": STRS, "missing_locales": STRS, "approved": BOOL}},
    "ArticleDetail": {"allOf": [ref("ArticleSummary"), {"type": "object", "properties": {
        "head": ref("Version"), "published": {"allOf": [ref("Version")], "nullable": True},
        "translations": arr({"type": "object", "properties": {"id": STR, "locale": STR, "status": STR,
                                                               "title": STR, "live": BOOL}}),
        "reviews": arr({"type": "object", "properties": {"version": INT, "decision": STR, "comment": STR,
                                                          "by": PERSON, "at": STR}}),
        "can_publish": BOOL, "publish_blocker": {"type": "string", "nullable": True}}}]},
    "ArticleEnvelope": {"type": "object", "required": ["article"], "properties": {
        "article": ref("ArticleDetail"), "sync": {"type": "object", "additionalProperties": True}}},
    "ArticleInput": {"type": "object", "required": ["locale", "title", "body"], "properties": {
        "id": STR, "group": STR, "locale": STR, "title": STR, "body": STR, "questions": STRS, "tags": STRS}},
    "ArticleUpdate": {"type": "object", "required": ["base_version"], "properties": {
        "base_version": INT, "title": STR, "body": STR, "questions": STRS, "tags": STRS}},
    "TryResult": {"type": "object", "properties": {
        "decision": {"type": "string", "enum": ["answer", "clarify", "handoff"]}, "version": STR,
        "hits": arr({"type": "object", "properties": {"article_id": STR, "group": STR, "title": STR, "locale": STR,
                                                       "score": {"type": "number"}, "link": STR, "draft": BOOL}})}},
    "ImportReport": {"type": "object", "properties": {
        "created": STRS, "updated": STRS, "unchanged": STRS, "published": STRS,
        "skipped": arr({"type": "object", "properties": {"source": STR, "line": INT, "id": STR, "reason": STR}})}},
}
EMPTY = {"type": "object", "properties": {}}
ERRORS_BASE = {"401": "not signed in", "403": "wrong role or missing CSRF token"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: object
    summary: str
    request: dict | None = None  # JSON schema of the body
    response: dict | None = None  # JSON schema of the 2xx answer
    errors: tuple[int, ...] = ()
    query: tuple[str, ...] = ()
    status: int = 200


A = "/api/editor/articles/{id}"
ENV = ref("ArticleEnvelope")
ROUTES: list[Route] = [
    Route("GET", "/api/editor/meta", views.meta, "Languages, statuses, approval setting, the signed-in editor",
          response={"type": "object", "properties": {"languages": STRS, "statuses": STRS, "require_approval": BOOL,
                                                     "me": {"type": "object"}}}),
    Route("GET", "/api/editor/articles", views.list_articles, "List and filter articles", errors=(400,),
          query=("locale", "status", "tag", "q", "missing", "live", "limit", "offset"),
          response={"type": "object", "properties": {"articles": arr(ref("ArticleSummary")), "total": INT}}),
    Route("POST", "/api/editor/articles", views.create, "Create a draft (version 1)", ref("ArticleInput"), ENV,
          (400, 409, 413, 415), status=201),
    Route("GET", A, views.get_article, "One article with its head, published version and translations",
          response=ENV, errors=(404,)),
    Route("PUT", A, views.update_article, "Save a new version (optimistic concurrency: base_version or If-Match)",
          ref("ArticleUpdate"), ENV, (400, 404, 409, 413, 415)),
    Route("GET", A + "/versions", views.versions, "Every version, newest first", errors=(404,),
          response={"type": "object", "properties": {"versions": arr(ref("Version"))}}),
    Route("GET", A + "/versions/{n}", views.version, "One version", errors=(400, 404),
          response={"type": "object", "properties": {"version": ref("Version")}}),
    Route("GET", A + "/diff", views.diff, "Unified diff of title, body, questions and tags between two versions",
          errors=(400, 404), query=("from", "to"),
          response={"type": "object", "properties": {"from": INT, "to": INT, "diff": STR, "changed": STRS}}),
    Route("POST", A + "/rollback", views.rollback, "A new draft version with an old version's content",
          {"type": "object", "required": ["version"], "properties": {"version": INT, "base_version": INT}}, ENV,
          (400, 404, 409)),
    Route("POST", A + "/submit", views.submit, "Submit the draft for review", EMPTY, ENV, (404, 409, 422)),
    Route("POST", A + "/approve", views.approve, "Approve the latest version (not its author)",
          {"type": "object", "properties": {"comment": STR}}, ENV, (400, 404, 409, 422)),
    Route("POST", A + "/reject", views.reject, "Send it back to draft with a comment",
          {"type": "object", "required": ["comment"], "properties": {"comment": STR}}, ENV, (400, 404, 409, 422)),
    Route("POST", A + "/publish", live.publish, "Publish now (live within seconds) or at publish_at",
          {"type": "object", "properties": {"publish_at": {"type": "string", "format": "date-time"}, "force": BOOL}},
          ENV, (400, 404, 409, 422, 503)),
    Route("POST", A + "/cancel-schedule", live.cancel_schedule, "Cancel a scheduled publish", EMPTY, ENV,
          (404, 422)),
    Route("POST", A + "/unpublish", live.unpublish, "Take the live version off-line", EMPTY, ENV,
          (404, 409, 422, 503)),
    Route("POST", A + "/archive", live.archive, "Archive (and take off-line)", EMPTY, ENV, (404, 409, 422, 503)),
    Route("POST", A + "/translations", live.link_translation, "Link as a translation (set the group)",
          {"type": "object", "properties": {"group": STR, "translation_of": STR}}, ENV, (400, 404, 409, 503)),
    Route("GET", "/api/editor/audit", views.audit_log, "The audit log, newest first", errors=(400,),
          query=("article_id", "limit", "before"),
          response={"type": "object", "properties": {"entries": arr({"type": "object", "properties": {
              "id": INT, "at": STR, "actor": PERSON, "action": STR, "article_id": STR, "version": INT,
              "details": {"type": "object"}}})}}),
    Route("POST", "/api/editor/try", tryout.try_question, "Decision and ranked articles now and with a draft",
          {"type": "object", "required": ["question"], "properties": {
              "question": STR, "language": STR, "article_id": STR, "draft": ref("ArticleInput")}},
          {"type": "object", "properties": {"question": STR, "language": STR, "current": ref("TryResult"),
                                            "with_draft": {"allOf": [ref("TryResult")], "nullable": True},
                                            "changed": BOOL}}, (400, 404, 503)),
    Route("GET", "/api/editor/export", transfer.export_view, "Export the whole knowledge base", errors=(400,),
          query=("format",), response={"type": "string", "format": "binary"}),
    Route("POST", "/api/editor/import", transfer.import_view,
          "Import a JSONL, CSV or zipped Markdown folder (raw body); drafts unless publish=true (admin)",
          {"type": "string", "format": "binary"},
          {"type": "object", "properties": {"report": ref("ImportReport")}}, (400, 403, 413, 503),
          query=("format", "publish")),
    Route("GET", "/api/editor/gaps", gaps.gaps, "Unanswered questions as topics, articles never shown, colliding pairs",
          errors=(400, 503), query=("days",),
          response={"type": "object", "properties": {
              "period_days": INT, "questions": INT,
              "topics": arr({"type": "object", "properties": {"key": STR, "label": STR, "count": INT,
                                                            "languages": STRS, "examples": STRS, "questions": STRS}}),
              "never_shown": arr({"type": "object", "properties": {"id": STR, "group": STR, "locale": STR,
                                                                   "title": STR}}),
              "collisions": arr({"type": "object", "properties": {"groups": STRS, "count": INT, "how": STRS}})}}),
    Route("POST", "/api/editor/gaps/draft", gaps.draft_from_topic,
          "A draft from a topic's questions (title = the first, the rest as 'also asked as')",
          {"type": "object", "required": ["questions"], "properties": {"questions": STRS, "locale": STR}}, ENV,
          (400, 409, 415), status=201),
]


def _operation(r: Route) -> dict:
    params = [{"name": n, "in": "path", "required": True, "schema": STR} for n in re.findall(r"{(\w+)}", r.path)]
    params += [{"name": n, "in": "query", "required": False, "schema": STR} for n in r.query]
    if r.method == "PUT":
        params.append({"name": "If-Match", "in": "header", "required": False, "schema": STR,
                       "description": "the version edited (instead of base_version)"})
    if r.method != "GET":
        params.append({"name": "X-CSRF-Token", "in": "header", "required": True, "schema": STR})
    op = {"summary": r.summary, "operationId": r.handler.__name__, "tags": ["editor"], "parameters": params,
          "responses": {str(r.status): {"description": "OK", "content": {
              "application/json": {"schema": r.response or EMPTY}}}}}
    if r.request is not None:
        ctype = "application/octet-stream" if r.request.get("format") == "binary" else "application/json"
        op["requestBody"] = {"required": r.method == "PUT" or bool(r.request.get("required")),
                             "content": {ctype: {"schema": r.request}}}
    for code in sorted({*(int(c) for c in ERRORS_BASE), *r.errors}):
        op["responses"][str(code)] = {"description": ERRORS_BASE.get(str(code), "see the error message"),
                                      "content": {"application/json": {"schema": ref("Error")}}}
    return op


def document(app: web.Application) -> dict:
    paths: dict[str, dict] = {}
    known = {(r.method, r.path) for r in ROUTES}
    for r in ROUTES:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r)
    for route in app.router.routes():  # routes other modules added under /api/editor
        path = route.resource.canonical if route.resource is not None else ""
        if not path.startswith("/api/editor") or route.method in ("HEAD", "*") or (route.method, path) in known:
            continue
        extra = getattr(route.handler, "openapi", None) or {}
        doc = (route.handler.__doc__ or "").strip().split("\n")[0] or path
        op = {"summary": doc, "operationId": getattr(route.handler, "__name__", path), "tags": ["editor"],
              "parameters": [{"name": n, "in": "path", "required": True, "schema": STR}
                             for n in re.findall(r"{(\w+)}", path)],
              "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": EMPTY}}},
                            **{c: {"description": d, "content": {"application/json": {"schema": ref("Error")}}}
                               for c, d in ERRORS_BASE.items()}}}
        op.update(extra)
        paths.setdefault(path, {})[route.method.lower()] = op
    return {"openapi": "3.0.3",
            "info": {"title": "Self-service support assistant: editors' API", "version": "1",
                     "description": "Sign in with POST /api/inbox/login (session cookie); send the session's "
                                    "CSRF token in X-CSRF-Token on every change. Roles: editor, admin."},
            "components": {"schemas": SCHEMAS, "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "inbox_session"}}},
            "security": [{"session": []}], "paths": dict(sorted(paths.items()))}


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(request.app), headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    """Register the editors' API, /api/openapi.json and the background work (seed, sync, schedule)."""
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler)
    app.router.add_get("/api/openapi.json", openapi)
    from . import page

    app.router.add_routes(page.routes())  # the editors' page at /editor
    app.cleanup_ctx.append(publishing.background)
