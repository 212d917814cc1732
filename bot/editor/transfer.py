"""Bulk import and export of the whole knowledge base: JSONL, CSV and a Markdown folder (a zip over
HTTP, a folder on the command line), from ``/api/editor/import|export`` and ``python -m bot kb``.

Records have the fields id, group, locale, title, body, tags, questions, status. CSV columns are the
same; ``tags`` are comma-separated and ``questions`` one per line within the cell. Markdown files
are ``<locale>/<id>.md`` with front matter, as in data/knowledge_base.

Import: an unknown id is created as a draft (version 1); a known one gets a new version when its
content differs (never overwriting history; no concurrency check: the import is the newer text),
else it is unchanged. With ``publish`` (an admin over HTTP; the CLI's --publish) rows whose status
is "published" are published as well (audited as imported publishes, no second approval); then the
index is updated once. Everything else stays a draft for the usual review. Broken rows are skipped
and reported with file, line and reason; the rest loads. Zip entries with absolute paths or ".."
are refused.
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import yaml
from aiohttp import web

from knowledge_base.articles import Article, ArticleError, parse_markdown, validate_record

from .. import keys
from ..staff.auth import SIGNED
from . import publishing, store
from .store import EditorError
from .views import editor_route, ok, read_limited, sessionmaker

FORMATS = ("jsonl", "csv", "markdown")
COLUMNS = ("id", "group", "locale", "title", "body", "tags", "questions", "status")
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_ZIP_ENTRIES = 5000


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def skip(self, source: str, line: int, reason: str, article_id: str | None = None) -> None:
        self.skipped.append({"source": source, "line": line, "id": article_id, "reason": reason})

    def to_dict(self) -> dict:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "published": self.published, "skipped": self.skipped}


# --- reading the formats into (source, line, record) -------------------------------------------------

def records_jsonl(data: bytes, source: str, report: Report):
    for lineno, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            report.skip(source, lineno, "not valid UTF-8")
            continue
        except json.JSONDecodeError as exc:
            report.skip(source, lineno, f"not valid JSON: {exc.msg}")
            continue
        except RecursionError:
            report.skip(source, lineno, "not valid JSON: nested too deeply")
            continue
        yield source, lineno, rec


def records_csv(data: bytes, source: str, report: Report):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.skip(source, 1, "not valid UTF-8")
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = [c for c in ("id", "locale", "title", "body") if c not in (reader.fieldnames or [])]
        if missing:
            report.skip(source, 1, f"the header lacks the column(s) {', '.join(missing)}")
            return
        rows, prev = [], reader.line_num
        for row in reader:  # a row may span lines (a quoted body): name the line it starts on
            rows.append((prev + 1, row))
            prev = reader.line_num
    except csv.Error as exc:
        report.skip(source, reader.line_num or 1, f"not valid CSV: {exc}; nothing of this file was imported")
        return
    for line, row in rows:
        if None in row:
            report.skip(source, line, "more cells than columns")
            continue
        rec = {k: v for k, v in row.items() if v not in (None, "")}
        if isinstance(rec.get("questions"), str):
            rec["questions"] = [q.strip() for q in rec["questions"].splitlines() if q.strip()]
        yield source, line, rec


def safe_entry(name: str) -> bool:
    p = PurePosixPath(name)
    return not (name.startswith("/") or "\\" in name or ".." in p.parts or ":" in name)


def records_markdown_zip(data: bytes, source: str, report: Report):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        report.skip(source, 1, "not a zip file")
        return
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        report.skip(source, 1, f"more than {MAX_ZIP_ENTRIES} files")
        return
    for info in infos:
        name = info.filename
        if info.is_dir() or not name.endswith(".md") or PurePosixPath(name).name.lower() == "readme.md":
            continue
        if not safe_entry(name):
            report.skip(name, 1, "unsafe path in the zip (absolute or '..'): refused")
            continue
        if info.file_size > 2 * 1024 * 1024:
            report.skip(name, 1, "larger than 2 MiB")
            continue
        yield from _markdown_record(zf.read(info), name, report)


def records_markdown_folder(folder, report: Report):
    from pathlib import Path

    for path in sorted(Path(folder).rglob("*.md")):
        if path.name.lower() != "readme.md":
            yield from _markdown_record(path.read_bytes(), str(path), report)


def _markdown_record(raw: bytes, source: str, report: Report):
    try:
        yield source, 1, parse_markdown(raw.decode("utf-8"))
    except UnicodeDecodeError:
        report.skip(source, 1, "not valid UTF-8")
    except ArticleError as exc:
        report.skip(source, 1, str(exc))


def guess_format(name: str) -> str | None:
    name = name.lower()
    return "jsonl" if name.endswith((".jsonl", ".ndjson", ".json")) else "csv" if name.endswith(".csv") \
        else "markdown" if name.endswith(".zip") else None


def records_of(data: bytes, fmt: str, source: str, report: Report):
    return {"jsonl": records_jsonl, "csv": records_csv, "markdown": records_markdown_zip}[fmt](data, source, report)


# --- applying -----------------------------------------------------------------------------------------

async def apply_records(session, actor, records, report: Report, publish: bool) -> None:
    """Create or update each valid record in ``session`` (not committed)."""
    seen: set[str] = set()
    for source, line, rec in records:
        try:
            art_in = validate_record(rec)
        except ArticleError as exc:
            report.skip(source, line, str(exc), rec.get("id") if isinstance(rec, dict) else None)
            continue
        if art_in.id in seen:
            report.skip(source, line, f"duplicate id {art_in.id!r}: this copy skipped", art_in.id)
            continue
        seen.add(art_in.id)
        data = {"id": art_in.id, "group": art_in.group, "locale": art_in.locale, "title": art_in.title,
                "body": art_in.body, "questions": list(art_in.questions), "tags": list(art_in.tags)}
        try:  # every refusal comes before the row's first write, so a bad row leaves nothing behind
            await _apply_one(session, actor, data, art_in, report, publish)
        except EditorError as exc:
            report.skip(source, line, exc.message, art_in.id)


async def _apply_one(session, actor, data: dict, art_in: Article, report: Report, publish: bool) -> None:
    try:
        art = await store.get_article(session, art_in.id)
    except EditorError:
        art = None
    if art is None:
        art = await store.create_article(session, actor, data, note="imported")
        report.created.append(art.article_id)
    else:
        if art.locale != art_in.locale:
            raise EditorError(409, f"the article exists with locale {art.locale!r}, not {art_in.locale!r}")
        regrouped = art.group_id != art_in.group
        if regrouped:
            await store.set_group(session, actor, art, art_in.group)
        changed = await store.save_version(session, actor, art, None, store.clean_content(data), note="imported")
        (report.updated if changed or regrouped else report.unchanged).append(art.article_id)
    if publish and art_in.status == "published" and art.published_version != art.head_version:
        await store.transition(session, actor, art, "publish", (art.status,), "published",
                               published_version=art.head_version, publish_at=None, scheduled_by=None)
        await store.audit(session, actor, "publish", art.article_id, art.head_version, imported=True)
        report.published.append(art.article_id)


# --- exporting ----------------------------------------------------------------------------------------

async def export_records(session) -> list[dict]:
    """Every article's head version (status = the head's workflow status)."""
    from sqlalchemy import select

    from ..store.models import KbArticle

    out = []
    for art in (await session.execute(select(KbArticle).order_by(KbArticle.article_id))).scalars():
        head = await store.get_version(session, art, art.head_version)
        out.append({"id": art.article_id, "group": art.group_id, "locale": art.locale, "title": head.title,
                    "body": head.body, "tags": list(head.tags or []), "questions": list(head.questions or []),
                    "status": art.status})
    return out


def to_jsonl(recs: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode("utf-8")


def to_csv(recs: list[dict]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    for r in recs:
        w.writerow({**r, "tags": ",".join(r["tags"]), "questions": "\n".join(r["questions"])})
    return buf.getvalue().encode("utf-8")


def markdown_files(recs: list[dict]) -> dict[str, str]:
    files = {}
    for r in recs:
        meta = {k: r[k] for k in ("id", "title", "locale", "group", "tags", "status", "questions")}
        files[f"{r['locale']}/{r['id']}.md"] = ("---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
                                                 + "---\n" + r["body"].rstrip() + "\n")
    return files


def to_zip(recs: list[dict]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in markdown_files(recs).items():
            zf.writestr(name, text)
    return buf.getvalue()


# --- HTTP -----------------------------------------------------------------------------------------------

@editor_route
async def export_view(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "jsonl")
    if fmt not in FORMATS:
        raise EditorError(400, f"'format' must be one of {', '.join(FORMATS)}", field="format")
    async with sessionmaker(request)() as session:
        recs = await export_records(session)
    body, ctype, ext = {"jsonl": (to_jsonl, "application/x-ndjson", "jsonl"), "csv": (to_csv, "text/csv", "csv"),
                        "markdown": (to_zip, "application/zip", "zip")}[fmt]
    return web.Response(body=body(recs), content_type=ctype, headers={
        "Content-Disposition": f'attachment; filename="knowledge-base.{ext}"', "Cache-Control": "no-store"})


@editor_route
async def import_view(request: web.Request) -> web.Response:
    fmt = request.query.get("format") or guess_format(request.query.get("filename", "")) or {
        "application/zip": "markdown", "text/csv": "csv"}.get(request.content_type, "jsonl")
    if fmt not in FORMATS:
        raise EditorError(400, f"'format' must be one of {', '.join(FORMATS)}", field="format")
    publish = request.query.get("publish", "false") == "true"
    who = request[SIGNED].actor
    if publish and request.app[keys.SETTINGS].editor_require_approval and not who.is_admin:
        raise EditorError(403, "only an admin may publish while importing (publishing needs a second editor's "
                               "approval); import as drafts instead")
    data = await read_limited(request, MAX_IMPORT_BYTES)
    if not data.strip():
        raise EditorError(400, "the body is empty: send the file's bytes")
    report = Report()

    async def change(session):
        await apply_records(session, who, records_of(data, fmt, request.query.get("filename") or f"upload.{fmt}",
                                                     report), report, publish)
    if publish:
        await publishing.changing_live_set(request.app, change)
    else:
        async with sessionmaker(request)() as session:
            await change(session)
            await session.commit()
    return ok({"report": report.to_dict()})
