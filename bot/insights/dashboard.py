"""The managers' dashboard: the page at /dashboard (admins sign in there) and its admin API.

GET  /api/admin/metrics?from=YYYY-MM-DD&to=YYYY-MM-DD&channel=&language=
         -> every number of bot.insights.metrics (definitions there), plus the customers at risk of churning
GET  /api/admin/metrics.csv?...&table=summary|daily|conversations -> the same as CSV (a download)
GET  /api/admin/customer-counts -> the customer counts the churn rates are computed from
POST /api/admin/customer-counts {period_start, period_end, customers_start, customers_end, new_customers}
         -> 200 (a period entered again replaces its numbers)
POST /api/admin/customer-counts/import (text/csv with that header) -> every row, or none (400 naming the line)
"""
from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from .. import keys
from ..staff import auth
from ..staff.pages import page_routes
from ..store.models import CustomerCount
from . import churn, metrics

WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "dashboard"
STATIC_FILES = {"dashboard.js": "application/javascript", "dashboard.css": "text/css",
                "texts.json": "application/json"}
COUNT_FIELDS = ("period_start", "period_end", "customers_start", "customers_end", "new_customers")
MAX_IMPORT_ROWS = 1000
MAX_COUNT = 10**9


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _json(data) -> web.Response:
    return web.json_response(data, dumps=lambda o: json.dumps(o, ensure_ascii=False),
                             headers={"Cache-Control": "no-store"})


def _filters(request: web.Request) -> metrics.Filters:
    try:
        return metrics.Filters.parse(request.query)
    except metrics.MetricsError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}), content_type="application/json") from None


async def _numbers(request: web.Request) -> dict:
    f = _filters(request)
    async with request.app[keys.SESSIONMAKER]() as session:
        facts = await metrics.conversation_facts(session, f)
        out = metrics.aggregate(facts, f)
        out["churn"] = await metrics.customer_counts(session, f)
        out["at_risk"] = await churn.at_risk(session, f.until)
    out["drivers"] = await drivers(request.app, facts)
    return out


async def drivers(app: web.Application, facts: list[dict]) -> dict:
    """Top contact drivers: each conversation's first question to the knowledge base, clustered across
    languages with the multilingual encoder (the action server's /kb/embed, as the editors' gaps)."""
    import numpy as np

    from knowledge_base.clustering import cluster_texts

    from ..editor.publishing import KbUnavailable, client

    items = [(x["questions"][0], x["language"]) for x in facts if x["questions"] and x["questions"][0].strip()]
    items = items[-metrics.MAX_DRIVER_QUESTIONS:]
    if not items:
        return {"questions": 0, "topics": []}
    texts = [q for q, _ in items]
    try:
        vectors = np.asarray(await client(app).embed(texts), dtype=np.float32)
    except KbUnavailable as exc:
        return {"questions": len(texts), "topics": [], "error": f"the questions could not be grouped: {exc}"}
    topics = cluster_texts(vectors, texts, [lang for _, lang in items])
    return {"questions": len(texts), "topics": [
        {"label": t.label, "count": t.count, "share": round(t.count / len(texts), 4), "languages": t.languages,
         "examples": t.examples} for t in topics[:15]]}


@auth.require("admin")
async def api_metrics(request: web.Request) -> web.Response:
    return _json(await _numbers(request))


def _csv_rows(data: dict, table: str) -> list[list]:
    if table == "daily":
        keys_ = ["date", "conversations", "handed_off", "contained", "not_resolved", "csat_responses", "csat_average"]
        return [keys_] + [[d[k] for k in keys_] for d in data["daily"]]
    if table == "summary":
        rows = [["metric", "value"]]
        for k in ("conversations", "handed_off", "handoff_rate", "contained", "containment_rate", "resolved_by_agent",
                  "first_contact_resolved", "fcr_rate", "questions", "unanswered", "unanswered_rate"):
            rows.append([k, data[k]])
        for part in ("first_response_seconds", "resolution_seconds"):
            rows += [[f"{part}_{k}", v] for k, v in data[part].items()]
        rows += [["csat_responses", data["csat"]["responses"]], ["csat_score", data["csat"]["score"]],
                 ["csat_average", data["csat"]["average"]], ["nps_responses", data["nps"]["responses"]],
                 ["nps", data["nps"]["nps"]]]
        rows += [[f"outcome_{k}", v] for k, v in data["outcomes"].items()]
        rows += [[f"handoff_reason_{k}", v] for k, v in data["handoff_reasons"].items()]
        rows += [[f"channel_{k}", v] for k, v in data["by_channel"].items()]
        rows += [[f"language_{k}", v] for k, v in data["by_language"].items()]
        for c in data["churn"]:
            p = f"churn_{c['period_start']}_{c['period_end']}"
            rows += [[p + "_simple", c["simple_churn"]], [p + "_adjusted", c["adjusted_churn"]]]
        return rows
    raise AssertionError(table)


def _safe_cell(v) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: such text gets a leading quote."""
    s = "" if v is None else str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@") and not _number(s) else s


def _number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


@auth.require("admin")
async def api_metrics_csv(request: web.Request) -> web.Response:
    table = request.query.get("table", "summary")
    if table not in ("summary", "daily", "conversations"):
        return _error(400, "'table' must be summary, daily or conversations")
    if table == "conversations":
        f = _filters(request)
        async with request.app[keys.SESSIONMAKER]() as session:
            facts = await metrics.conversation_facts(session, f)
        head = ["conversation", "channel", "language", "created_at", "outcome", "handed_off", "reason", "resolved_by_agent",
                "first_response_seconds", "resolution_seconds", "first_contact_resolved", "csat", "nps", "questions",
                "unanswered"]
        rows = [head] + [[x["id"], x["channel"], x["language"], x["created_at"].isoformat(), x["outcome"],
                          x["handed_off_at"] is not None, x["reason"], x["resolved_at"] is not None,
                          metrics.seconds_between(x["handed_off_at"], x["first_agent_reply_at"]),
                          metrics.seconds_between(x["handed_off_at"], x["resolved_at"]), x["first_contact_resolved"],
                          x["csat"], x["nps"], len(x["questions"]), len(x["unanswered"])] for x in facts]
        name = f"conversations-{f.start}-{f.end}.csv"
    else:
        data = await _numbers(request)
        rows = _csv_rows(data, table)
        name = f"{table}-{data['period']['from']}-{data['period']['to']}.csv"
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow([_safe_cell(v) for v in row])
    return web.Response(text=buf.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


class CountError(ValueError):
    pass


def parse_count(raw: dict) -> dict:
    """One customer-count period, checked: dates, whole non-negative numbers, and no more customers
    at the end than at the start plus those gained."""
    if not isinstance(raw, dict):
        raise CountError("a customer count must be an object")
    out: dict = {}
    for k in ("period_start", "period_end"):
        v = raw.get(k)
        try:
            out[k] = date.fromisoformat(str(v).strip()).isoformat()
        except ValueError:
            raise CountError(f"'{k}' must be a date like 2026-11-01") from None
    if out["period_start"] > out["period_end"]:
        raise CountError("'period_start' must not be after 'period_end'")
    for k in ("customers_start", "customers_end", "new_customers"):
        v = raw.get(k, 0 if k == "new_customers" else None)
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v.strip())
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_COUNT:
            raise CountError(f"'{k}' must be a whole number from 0 to {MAX_COUNT}")
        out[k] = v
    if out["customers_start"] == 0:
        raise CountError("'customers_start' must be more than 0 (churn divides by it)")
    if out["customers_end"] > out["customers_start"] + out["new_customers"]:
        raise CountError("'customers_end' cannot exceed customers_start + new_customers")
    return out


async def _store_counts(session, rows: list[dict]) -> None:
    for r in rows:
        existing = (await session.execute(select(CustomerCount).where(
            CustomerCount.period_start == r["period_start"], CustomerCount.period_end == r["period_end"]))).scalar()
        if existing is None:
            session.add(CustomerCount(**r))
        else:
            for k, v in r.items():
                setattr(existing, k, v)
    await session.commit()


@auth.require("admin")
async def api_counts(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONMAKER]() as session:
        return _json({"counts": await metrics.customer_counts(session)})


@auth.require("admin")
async def api_add_count(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body must be JSON")
    try:
        row = parse_count(body)
    except CountError as exc:
        return _error(400, str(exc))
    async with request.app[keys.SESSIONMAKER]() as session:
        await _store_counts(session, [row])
        return _json({"counts": await metrics.customer_counts(session)})


@auth.require("admin")
async def api_import_counts(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _error(400, "the CSV must be UTF-8")
    reader = csv.DictReader(io.StringIO(text))
    missing = [k for k in ("period_start", "period_end", "customers_start", "customers_end")
               if k not in (reader.fieldnames or [])]
    if missing:
        return _error(400, f"the CSV header must name {', '.join(COUNT_FIELDS)} (missing: {', '.join(missing)})")
    rows = []
    try:
        for line, r in enumerate(reader, 2):
            if len(rows) >= MAX_IMPORT_ROWS:
                return _error(400, f"at most {MAX_IMPORT_ROWS} rows per import")
            try:
                rows.append(parse_count({k: (r.get(k) or "").strip() or (0 if k == "new_customers" else "")
                                         for k in COUNT_FIELDS}))
            except CountError as exc:
                return _error(400, f"line {line}: {exc}")
    except csv.Error as exc:
        return _error(400, f"not a valid CSV: {exc}")
    if not rows:
        return _error(400, "the CSV has no rows")
    async with request.app[keys.SESSIONMAKER]() as session:
        await _store_counts(session, rows)
        return _json({"imported": len(rows), "counts": await metrics.customer_counts(session)})


PUBLIC_ROUTES = {("GET", "/dashboard"), ("GET", "/dashboard/static/{name}")}


def routes() -> list[web.RouteDef]:
    return [*page_routes("/dashboard", WEB_DIR, STATIC_FILES),
            web.get("/api/admin/metrics", api_metrics),
            web.get("/api/admin/metrics.csv", api_metrics_csv),
            web.get("/api/admin/customer-counts", api_counts),
            web.post("/api/admin/customer-counts", api_add_count),
            web.post("/api/admin/customer-counts/import", api_import_counts)]
