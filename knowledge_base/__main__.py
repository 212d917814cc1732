"""Command line: python -m knowledge_base {import,index,search,eval,stats} ...

``--kb DIR`` is a knowledge-base folder: its articles live in DIR/articles (Markdown) and its
index snapshots in DIR/index. Without --kb the product's own knowledge base is used (the
KB_ARTICLES_DIR and KB_INDEX_DIR settings).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from .config import KBSettings, SettingsError


def _settings(args) -> KBSettings:
    s = KBSettings.from_env()
    if getattr(args, "kb", None):
        kb = Path(args.kb).resolve()
        s = replace(s, articles_dir=kb / "articles", index_dir=kb / "index", calibration_file=None)
    if getattr(args, "encoder", None):
        s = replace(s, encoder=args.encoder)
    return s


def _fail(msg: str, code: int = 2) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def cmd_import(args) -> int:
    from .articles import load_source
    from .builder import ensure_index

    s = _settings(args)
    imported = load_source(Path(args.source))
    for p in imported.problems:
        print(f"skipped: {p}", file=sys.stderr)
    if not imported.articles:
        return _fail(f"no valid articles in {args.source}")
    s.articles_dir.mkdir(parents=True, exist_ok=True)
    created = updated = 0
    for art in imported.articles:
        target = s.articles_dir / art.locale / f"{art.id}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = _to_markdown(art)
        if target.exists():
            if target.read_text(encoding="utf-8") == text:
                continue
            updated += 1
        else:
            created += 1
        tmp = target.with_suffix(".md.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    print(json.dumps({"created": created, "updated": updated, "skipped": len(imported.problems),
                      "problems": [str(p) for p in imported.problems]}, ensure_ascii=False))
    if not args.no_index:
        ensure_index(s, show_progress=not args.quiet)
    return 0


def _to_markdown(art) -> str:
    import yaml

    meta = {"id": art.id, "title": art.title, "locale": art.locale, "group": art.group,
            "tags": list(art.tags), "status": art.status, "questions": list(art.questions)}
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n" + art.body + "\n"


def cmd_index(args) -> int:
    from .builder import ensure_index

    s = _settings(args)
    out = ensure_index(s, force=args.force, show_progress=not args.quiet)
    for p in out.problems:
        print(f"skipped: {p}", file=sys.stderr)
    m = out.snapshot.manifest
    print(json.dumps({"built": out.built, "version": m["version"], "articles": m["articles"],
                      "entries": m["entries"], "embedded": m.get("embedded_vectors"),
                      "decision": m.get("decision")}, ensure_ascii=False))
    return 0


def _searcher(s: KBSettings):
    from .encoders import load_encoder
    from .live import LiveKnowledgeBase

    live = LiveKnowledgeBase(s.index_dir, load_encoder(s.encoder, s.encoder_threads), s.default_locale,
                             s.encoder_threads)
    live.refresh()
    if live.searcher is None:
        raise FileNotFoundError(f"{live.last_error}: run 'python -m knowledge_base index' first")
    return live.searcher


def cmd_search(args) -> int:
    s = _settings(args)
    searcher = _searcher(s)
    res = searcher.search(args.question, lang=args.lang, k=args.k)
    if args.json:
        print(json.dumps(res.to_dict(), ensure_ascii=False))
    else:
        print(f"decision: {res.decision}")
        for h in res.hits:
            print(f"  {h.score:.3f}  [{h.locale}] {h.title}  ({h.article_id})")
    return 0


def cmd_eval(args) -> int:
    from .evaluate import load_questions, search_metrics

    s = _settings(args)
    searcher = _searcher(s)
    questions = load_questions(args.queries)
    print(json.dumps(search_metrics(searcher, questions), ensure_ascii=False))
    return 0


def cmd_stats(args) -> int:
    from collections import Counter

    from .snapshot import load_current

    s = _settings(args)
    snap = load_current(s.index_dir)
    if snap is None:
        return _fail(f"no index snapshot in {s.index_dir}")
    locales = Counter(a.locale for a in snap.articles.values())
    groups = {a.group for a in snap.articles.values()}
    print(json.dumps({"version": snap.version, "encoder": snap.manifest["encoder"], "built_at": snap.manifest["built_at"],
                      "articles": len(snap.articles), "groups": len(groups), "entries": len(snap.records),
                      "locales": dict(locales), "index_kind": snap.manifest["index_kind"],
                      "decision": snap.manifest.get("decision"), "validation": snap.manifest.get("validation")},
                     ensure_ascii=False, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m knowledge_base", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--kb", help="knowledge-base folder (default: the product's own)")
        p.add_argument("--encoder", help="encoder spec: use-multilingual, minilm or st:<name or path>")
        return p

    p = common(sub.add_parser("import", help="import a Markdown folder or a JSONL file, then index"))
    p.add_argument("source")
    p.add_argument("--no-index", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_import)
    p = common(sub.add_parser("index", help="build the index snapshot when the articles changed"))
    p.add_argument("--force", action="store_true", help="rebuild even when nothing changed")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_index)
    p = common(sub.add_parser("search", help="search and decide"))
    p.add_argument("question")
    p.add_argument("--lang")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)
    p = common(sub.add_parser("eval", help="evaluate on a QUERIES.jsonl file"))
    p.add_argument("queries")
    p.set_defaults(func=cmd_eval)
    p = common(sub.add_parser("stats", help="describe the current snapshot"))
    p.set_defaults(func=cmd_stats)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
