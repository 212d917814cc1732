"""The editors' API on the real gateway (in-process, SQLite) without an action server: roles and
CSRF, seeding, the review workflow up to publishing, optimistic concurrency, versions, diff and
rollback, import with broken rows, export round trips, the OpenAPI document, and a publish that
cannot reach the action server (503, nothing changed)."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile

from bot.editor.routes import ROUTES

ARTICLE = {"locale": "en", "title": "Do you sell gift cards?", "group": "gift-cards",
           "body": "Yes: digital gift cards from EUR 10 to EUR 200, sent by email.\n\n## Redeeming\nEnter the code at checkout.",
           "questions": ["Can I buy a voucher?", "Gift voucher for a friend"], "tags": ["shop"]}


async def test_roles_csrf_and_seeded_articles(offline_gateway):
    gw, c = offline_gateway
    status, body = await c["aga"].get("/api/editor/articles")
    assert status == 403 and "editor" in body["error"]
    status, body = await c["eve"].get("/api/editor/articles?limit=1000")
    assert status == 200 and body["total"] == 84  # the articles folder, seeded as published version 1
    a = next(x for x in body["articles"] if x["id"] == "cancel-subscription-en")
    assert a["live"] and a["status"] == "published" and a["published_version"] == 1
    assert a["missing_locales"] == [x for x in ("en", "de", "tr", "ja") if x not in a["group_locales"]]
    # an editor may not use the inbox's admin routes
    assert (await c["eve"].get("/api/inbox/admin/agents"))[0] == 403
    # a change without the CSRF token is refused
    status, body = await c["eve"].call("POST", "/api/editor/articles", ARTICLE, csrf=False)
    assert status == 403 and "CSRF" in body["error"]
    import aiohttp

    async with aiohttp.ClientSession() as anon:
        async with anon.get(gw.url + "/api/editor/articles") as r:
            assert r.status == 401


async def test_filters_and_missing_translations(offline_gateway):
    _, c = offline_gateway
    _, de = await c["eve"].get("/api/editor/articles?locale=de&limit=1000")
    assert de["total"] > 0 and all(a["locale"] == "de" for a in de["articles"])
    _, missing = await c["eve"].get("/api/editor/articles?locale=en&missing=ja&limit=1000")
    assert missing["total"] > 0 and all("ja" in a["missing_locales"] for a in missing["articles"])
    _, q = await c["eve"].get("/api/editor/articles?q=password")
    assert q["total"] >= 1 and all("password" in (a["title"] + a["id"]).lower() for a in q["articles"])
    status, err = await c["eve"].get("/api/editor/articles?status=bogus")
    assert status == 400 and err["field"] == "status"


async def test_review_workflow_needs_a_second_editor(offline_gateway):
    _, c = offline_gateway
    status, body = await c["eve"].post("/api/editor/articles", ARTICLE)
    assert status == 201, body
    art = body["article"]
    assert art["id"] == "gift-cards-en" and art["status"] == "draft" and art["head_version"] == 1 and not art["live"]
    path = "/api/editor/articles/gift-cards-en"
    # not in review yet: approving and publishing are refused with the status named
    status, err = await c["ed"].post(path + "/approve")
    assert status == 422 and err["status"] == "draft"
    status, err = await c["eve"].post(path + "/publish")
    assert status == 422 and "draft" in err["error"]
    assert (await c["eve"].post(path + "/submit"))[1]["article"]["status"] == "in_review"
    # the author cannot approve their own version; an agent cannot touch it at all
    status, err = await c["eve"].post(path + "/approve")
    assert status == 403 and "second editor" in err["error"]
    assert (await c["aga"].post(path + "/approve"))[0] == 403
    status, err = await c["eve"].post(path + "/publish")
    assert status == 422 and "approval" in err["error"]
    # rejecting needs a comment and sends it back to draft
    status, err = await c["ed"].post(path + "/reject", {})
    assert status == 400 and err["field"] == "comment"
    status, body = await c["ed"].post(path + "/reject", {"comment": "Mention the expiry date."})
    assert status == 200 and body["article"]["status"] == "draft"
    assert body["article"]["reviews"][-1]["decision"] == "rejected"
    # a new version, resubmitted, approved by the second editor
    _, body = await c["eve"].put(path, {"base_version": 1, "body": ARTICLE["body"] + "\n\nCards never expire."})
    assert body["article"]["head_version"] == 2
    await c["eve"].post(path + "/submit")
    status, body = await c["ed"].post(path + "/approve", {"comment": "Good."})
    assert status == 200 and body["article"]["approved"] and body["article"]["can_publish"]
    # an approval belongs to a version: editing again needs a new one
    _, body = await c["eve"].put(path, {"base_version": 2, "title": "Do you sell gift cards and vouchers?"})
    assert body["article"]["status"] == "draft" and not body["article"]["approved"]
    # a non-admin cannot force a publish without approval
    status, err = await c["eve"].post(path + "/publish", {"force": True})
    assert status == 403
    _, audit = await c["eve"].get("/api/editor/audit?article_id=gift-cards-en")
    actions = [e["action"] for e in audit["entries"]]
    assert actions[::-1][:6] == ["create", "submit", "reject", "edit", "submit", "approve"]
    assert audit["entries"][-1]["actor"]["email"] == "eve@example.com"


async def test_concurrent_saves_conflict_instead_of_overwriting(offline_gateway):
    _, c = offline_gateway
    await c["eve"].post("/api/editor/articles", ARTICLE)
    path = "/api/editor/articles/gift-cards-en"
    status, first = await c["eve"].put(path, {"body": "Eve's text."}, headers={"If-Match": "1"})
    assert status == 200 and first["article"]["head_version"] == 2
    status, conflict = await c["ed"].put(path, {"base_version": 1, "body": "Ed's text."})
    assert status == 409 and conflict["current_version"] == 2
    _, now = await c["ed"].get(path)
    assert now["article"]["head"]["body"] == "Eve's text."
    # two saves of the same version at the same moment: exactly one wins
    results = await asyncio.gather(c["eve"].put(path, {"base_version": 2, "body": "Eve again."}),
                                   c["ed"].put(path, {"base_version": 2, "body": "Ed at the same time."}))
    assert sorted(r[0] for r in results) == [200, 409], results
    _, versions = await c["ed"].get(path + "/versions")
    assert [v["number"] for v in versions["versions"]] == [3, 2, 1]
    status, err = await c["ed"].put(path, {"body": "no base"})
    assert status == 400 and err["field"] == "base_version"
    status, err = await c["ed"].call("PUT", path, raw=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and "JSON" in err["error"]
    status, err = await c["ed"].put(path, {"base_version": 2, "title": ""})
    assert status == 400 and err["field"] == "title"
    assert (await c["ed"].get("/api/editor/articles/no-such-article"))[0] == 404


async def test_versions_diff_and_rollback(offline_gateway):
    _, c = offline_gateway
    path = "/api/editor/articles/reset-password-en"
    _, orig = await c["eve"].get(path)
    body1 = orig["article"]["head"]["body"]
    await c["eve"].put(path, {"base_version": 1, "body": body1 + "\n\nCall us if the link expired.",
                              "tags": ["account", "password"]})
    _, d = await c["eve"].get(path + "/diff?from=1&to=2")
    assert d["changed"] == ["body", "tags"] and "+Call us if the link expired." in d["diff"]
    _, detail = await c["eve"].get(path)
    # editing a published article never changes what customers see: version 1 stays live
    assert detail["article"]["published_version"] == 1 and detail["article"]["status"] == "draft"
    assert detail["article"]["published"]["body"] == body1
    status, body = await c["ed"].post(path + "/rollback", {"version": 1, "base_version": 2})
    assert status == 200 and body["article"]["head_version"] == 3 and body["article"]["head"]["body"] == body1
    _, versions = await c["eve"].get(path + "/versions")
    assert [v["number"] for v in versions["versions"]] == [3, 2, 1]
    assert versions["versions"][0]["note"] == "rollback to version 1"
    assert (await c["eve"].get(path + "/versions/9"))[0] == 404


async def test_publish_without_the_action_server_changes_nothing(offline_gateway):
    _, c = offline_gateway
    path = "/api/editor/articles/reset-password-en"
    status, err = await c["ada"].post(path + "/unpublish")
    assert status == 503 and "nothing was changed" in err["error"]
    _, detail = await c["ada"].get(path)
    assert detail["article"]["live"] and detail["article"]["published_version"] == 1
    _, audit = await c["ada"].get("/api/editor/audit?article_id=reset-password-en")
    assert not [e for e in audit["entries"] if e["action"] == "unpublish"]
    await c["eve"].post("/api/editor/articles", ARTICLE)
    status, err = await c["ada"].post("/api/editor/articles/gift-cards-en/publish", {"force": True})
    assert status == 503 and "unreachable" in err["error"]
    _, detail = await c["ada"].get("/api/editor/articles/gift-cards-en")
    assert not detail["article"]["live"] and detail["article"]["status"] == "draft"
    _, audit = await c["ada"].get("/api/editor/audit?article_id=gift-cards-en")
    assert [e["action"] for e in audit["entries"]] == ["create"]  # not even the bypass was recorded


async def test_import_reports_broken_rows_and_loads_the_rest(offline_gateway):
    _, c = offline_gateway
    rows = [
        {"id": "gift-cards-en", "locale": "en", "title": "Gift cards", "body": "We sell gift cards.", "group": "gift-cards"},
        {"id": "bad id!", "locale": "en", "title": "x", "body": "y"},
        {"id": "no-body-en", "locale": "en", "title": "No body"},
        {"id": "gift-cards-de", "locale": "de", "title": "Gutscheine", "body": "Wir verkaufen Gutscheine.",
         "group": "gift-cards"},
        {"id": "reset-password-en", "locale": "de", "title": "wrong locale", "body": "x"},
    ]
    jsonl = "\n".join(json.dumps(r) for r in rows[:2]) + "\n{broken json\n" + \
        "\n".join(json.dumps(r) for r in rows[2:]) + "\n"
    status, body = await c["eve"].call("POST", "/api/editor/import?format=jsonl", raw=jsonl.encode())
    assert status == 200, body
    rep = body["report"]
    assert rep["created"] == ["gift-cards-en", "gift-cards-de"]
    skipped = {s["line"]: s["reason"] for s in rep["skipped"]}
    assert set(skipped) == {2, 3, 4, 6}
    assert "invalid id" in skipped[2] and "JSON" in skipped[3] and "body" in skipped[4] and "locale" in skipped[6]
    _, de = await c["eve"].get("/api/editor/articles/gift-cards-de")
    assert de["article"]["status"] == "draft" and de["article"]["group_locales"] == ["de", "en"]
    # only an admin may publish while importing
    assert (await c["eve"].call("POST", "/api/editor/import?format=jsonl&publish=true", raw=jsonl.encode()))[0] == 403
    # path traversal in a zip is refused
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.md", "---\nid: evil-en\ntitle: Evil\nlocale: en\n---\nbody\n")
        zf.writestr("en/ok-en.md", "---\nid: ok-en\ntitle: OK\nlocale: en\n---\nFine.\n")
    _, body = await c["eve"].call("POST", "/api/editor/import?format=markdown", raw=buf.getvalue())
    assert body["report"]["created"] == ["ok-en"]
    assert body["report"]["skipped"][0]["source"] == "../evil.md" and "unsafe" in body["report"]["skipped"][0]["reason"]


async def test_export_round_trips_in_every_format(offline_gateway):
    _, c = offline_gateway
    await c["eve"].post("/api/editor/articles", ARTICLE)
    for fmt in ("jsonl", "csv", "markdown"):
        status, data = await c["eve"].get(f"/api/editor/export?format={fmt}")
        assert status == 200 and isinstance(data, bytes)
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(data.decode())))
            gift = next(r for r in rows if r["id"] == "gift-cards-en")
            assert gift["questions"].splitlines() == ARTICLE["questions"] and gift["status"] == "draft"
        status, body = await c["eve"].call("POST", f"/api/editor/import?format={fmt}", raw=data)
        rep = body["report"]
        assert status == 200 and not rep["created"] and not rep["updated"] and not rep["skipped"], rep
        assert len(rep["unchanged"]) == 85
    # a changed export comes back as a new version
    _, data = await c["eve"].get("/api/editor/export?format=jsonl")
    lines = [json.loads(x) for x in data.decode().splitlines()]
    for r in lines:
        if r["id"] == "gift-cards-en":
            r["body"] += "\n\nNew paragraph."
    _, body = await c["eve"].call("POST", "/api/editor/import?format=jsonl",
                                  raw="\n".join(json.dumps(r) for r in lines).encode())
    assert body["report"]["updated"] == ["gift-cards-en"]
    _, detail = await c["eve"].get("/api/editor/articles/gift-cards-en")
    assert detail["article"]["head_version"] == 2 and detail["article"]["head"]["note"] == "imported"


async def test_openapi_lists_every_editor_route(offline_gateway):
    gw, c = offline_gateway
    _, doc = await c["eve"].get("/api/openapi.json")
    from openapi_spec_validator import validate

    validate(doc)  # raises on anything that is not valid OpenAPI 3
    registered = {(r.method.lower(), r.resource.canonical) for r in gw.app.router.routes()
                  if r.resource is not None and r.resource.canonical.startswith("/api/editor") and r.method != "HEAD"}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert registered and registered <= documented
    assert len(registered) >= len(ROUTES)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "401" in op["responses"] and "403" in op["responses"], (method, path)
            assert any(code.startswith("2") for code in op["responses"]), (method, path)
    put = doc["paths"]["/api/editor/articles/{id}"]["put"]
    assert "409" in put["responses"] and put["requestBody"]["content"]["application/json"]["schema"]


async def test_hostile_input_gets_a_clear_4xx_never_a_5xx(offline_gateway):
    gw, c = offline_gateway
    eve = c["eve"]
    await eve.post("/api/editor/articles", ARTICLE)
    bodies = [[], "text", 5, None, {"title": 5}, {"title": "x" * 600, "body": "b", "locale": "en"},
              {"locale": "en", "title": "t", "body": "NUL \u0000 inside"}, {"base_version": 2**70},
              {"base_version": True}, {"version": -1}, {"version": "1e9"}, {"comment": ["x"]},
              {"publish_at": "tomorrow"}, {"publish_at": "2020-01-01T00:00:00Z"}, {"group": "../../etc"},
              {"translation_of": 7}, {"question": "q", "draft": {"title": "t"}}, {"question": ["x"]},
              {"question": "q", "language": 5}, {"questions": "not a list", "base_version": 1}]
    for r in ROUTES:
        path = r.path.replace("{id}", "gift-cards-en").replace("{n}", "99999999999999999999")
        queries = ["", "?limit=-5&offset=x", "?before=99999999999999999999", "?from=abc&to=2",
                   "?format=exe", "?status=nope&live=maybe"] if r.method == "GET" else ["", "?format=csv"]
        for q in queries:
            if r.method == "GET":
                status, body = await eve.get(path + q)
                assert status < 500, (r.path, q, status, body)
                continue
            for b in bodies:
                raw = json.dumps(b).encode()
                status, body = await eve.call(r.method, path + q, raw=raw, headers={"Content-Type": "application/json"})
                assert status < 500, (r.method, r.path, q, b, status, body)
                if status >= 400 and r.path != "/api/editor/import":
                    assert isinstance(body, dict) and body["error"], (r.path, b, body)
    for garbage in (b"\x00\x01\xff", b"id,locale\n\"unclosed", b"PK\x03\x04broken zip"):
        for fmt in ("jsonl", "csv", "markdown"):
            status, body = await eve.call("POST", f"/api/editor/import?format={fmt}", raw=garbage)
            assert status == 200 and body["report"]["skipped"] and not body["report"]["created"], (fmt, garbage, body)
    status, body = await eve.call("POST", "/api/editor/articles", raw=b"x" * (3 * 1024 * 1024),
                                  headers={"Content-Type": "application/json"})
    assert status == 413


async def test_translations_and_schedules(offline_gateway):
    _, c = offline_gateway
    eve = c["eve"]
    await eve.post("/api/editor/articles", ARTICLE)
    _, de = await eve.post("/api/editor/articles", {**ARTICLE, "locale": "de", "group": "geschenkkarten",
                                                    "title": "Verkauft ihr Geschenkkarten?"})
    assert de["article"]["group_locales"] == ["de"]
    status, body = await eve.post("/api/editor/articles/geschenkkarten-de/translations",
                                  {"translation_of": "gift-cards-en"})
    assert status == 200 and body["article"]["group"] == "gift-cards"
    assert body["article"]["group_locales"] == ["de", "en"] and "de" not in body["article"]["missing_locales"]
    assert body["article"]["translations"][0]["id"] == "gift-cards-en"
    # a group holds one article per locale
    _, other = await eve.post("/api/editor/articles", {**ARTICLE, "locale": "de", "group": "other-de",
                                                       "title": "Anderer Artikel"})
    status, err = await eve.post("/api/editor/articles/other-de-de/translations", {"group": "gift-cards"})
    assert status == 409 and "gift-cards-de" not in err["error"] and "geschenkkarten-de" in err["error"]
    # scheduling checks the workflow at once; an edit cancels a scheduled publish
    path = "/api/editor/articles/gift-cards-en"
    await eve.post(path + "/submit")
    await c["ed"].post(path + "/approve")
    status, err = await eve.post(path + "/publish", {"publish_at": "2099-01-01T08:00:00"})
    assert status == 400 and err["field"] == "publish_at"  # no time zone
    status, body = await eve.post(path + "/publish", {"publish_at": "2099-01-01T08:00:00Z"})
    assert status == 200 and body["article"]["publish_at"].startswith("2099-01-01T08:00") and not body["article"]["live"]
    _, body = await eve.put(path, {"base_version": 1, "title": "Gift cards"})
    assert body["article"]["publish_at"] is None and body["article"]["status"] == "draft"
    _, audit = await eve.get("/api/editor/audit?article_id=gift-cards-en&limit=3")
    assert [e["action"] for e in audit["entries"]][:3] == ["edit", "schedule_cancelled", "schedule_publish"]
