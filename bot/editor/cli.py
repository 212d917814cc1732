"""``python -m bot kb import PATH [--format jsonl|csv|markdown] [--as-author EMAIL] [--publish]`` and
``python -m bot kb export --format jsonl|csv|markdown OUT``: the whole knowledge base in the gateway
database (see bot/editor/transfer.py for the formats and what an import does).

Import reads a .jsonl / .csv file, a folder of Markdown files or a .zip of them, and prints the
report; exit code 0 when every record loaded, 1 when some were skipped (the rest loaded), 2 on a
usage error. With --publish, rows whose status is "published" are published and the running action
server's index is updated (when it cannot be reached, the next gateway start does it).
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


def add_cli(sub) -> None:
    p = sub.add_parser("kb", help="import or export the knowledge base (the editors' articles)")
    ksub = p.add_subparsers(dest="kb_cmd", required=True)
    imp = ksub.add_parser("import", help="import articles (drafts unless --publish)")
    imp.add_argument("path")
    imp.add_argument("--format", choices=("jsonl", "csv", "markdown"))
    imp.add_argument("--as-author", metavar="EMAIL", help="the account the new versions are attributed to")
    imp.add_argument("--publish", action="store_true", help="publish rows whose status is 'published'")
    exp = ksub.add_parser("export", help="export every article's latest version")
    exp.add_argument("--format", choices=("jsonl", "csv", "markdown"), required=True)
    exp.add_argument("out", help="a file (jsonl, csv) or a folder (markdown)")
    p.set_defaults(func=cli)


def cli(args) -> int:
    from knowledge_base.config import SettingsError

    from ..settings import Settings

    try:
        settings = Settings.from_env()
    except SettingsError as exc:  # as bot.__main__ says it (this module is below it)
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        return asyncio.run(_import(settings, args) if args.kb_cmd == "import" else _export(settings, args))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


async def _session(settings):
    from ..store.db import make_engine, sessionmaker, upgrade
    from .publishing import seed_if_empty

    await upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    maker = sessionmaker(engine)
    async with maker() as session:
        await seed_if_empty(session, settings.kb.articles_dir)
    return engine, maker


async def _import(settings, args) -> int:
    from ..staff.actor import Actor
    from ..staff.accounts import find_by_email
    from . import store, transfer

    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    fmt = args.format or ("markdown" if path.is_dir() else transfer.guess_format(path.name))
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path.name}: use --format jsonl|csv|markdown")
    report = transfer.Report()
    if path.is_dir():
        records = transfer.records_markdown_folder(path, report)
    else:
        records = transfer.records_of(path.read_bytes(), fmt, str(path), report)
    engine, maker = await _session(settings)
    try:
        async with maker() as session:
            actor = None
            if args.as_author:
                agent = await find_by_email(session, args.as_author)
                if agent is None:
                    raise ValueError(f"no account with the email {args.as_author}")
                actor = Actor.of(agent)
            await transfer.apply_records(session, actor, records, report, args.publish)
            await store.audit(session, actor, "import", None, None, source=str(path), format=fmt,
                              created=len(report.created), updated=len(report.updated),
                              skipped=len(report.skipped), published=len(report.published))
            await session.commit()
            live = await store.published_articles(session)
    finally:
        await engine.dispose()
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    if report.published:
        await _sync(settings, live)
    return 1 if report.skipped else 0


async def _sync(settings, articles) -> None:
    import aiohttp

    from .publishing import KbClient, KbUnavailable, resolve_internal_token

    async with aiohttp.ClientSession() as http:
        try:
            out = await KbClient(http, settings.action_server_url, resolve_internal_token(settings)).sync(articles)
            print(f"index updated: {out}", file=sys.stderr)
        except KbUnavailable as exc:
            print(f"note: the index was not updated now ({exc}); the gateway updates it when it starts",
                  file=sys.stderr)


async def _export(settings, args) -> int:
    from . import transfer

    engine, maker = await _session(settings)
    try:
        async with maker() as session:
            recs = await transfer.export_records(session)
    finally:
        await engine.dispose()
    out = Path(args.out)
    if args.format == "markdown":
        for name, text in transfer.markdown_files(recs).items():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(transfer.to_jsonl(recs) if args.format == "jsonl" else transfer.to_csv(recs))
    print(f"exported {len(recs)} articles to {out}", file=sys.stderr)
    return 0
