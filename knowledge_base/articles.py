"""Articles and their importers (a folder of Markdown files with front matter, or JSONL).

Bad records are reported with file and line and skipped; the rest loads.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, asdict
from pathlib import Path
from typing import Iterable

import yaml

STATUSES = ("draft", "in_review", "published", "archived")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    body: str
    locale: str
    group: str
    tags: tuple[str, ...] = ()
    status: str = "published"
    questions: tuple[str, ...] = ()

    @property
    def short_answer(self) -> str:
        """The first paragraph of the body: what the bot says in chat."""
        for block in re.split(r"\n\s*\n", self.body.strip()):
            block = block.strip()
            if block and not block.startswith("#"):
                return block
        return self.title

    @property
    def link(self) -> str:
        return f"/help/{self.locale}/{self.group}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tags"] = list(self.tags)
        d["questions"] = list(self.questions)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Article":
        return cls(
            id=d["id"], title=d["title"], body=d["body"], locale=d["locale"],
            group=d.get("group") or d["id"], tags=tuple(d.get("tags") or ()),
            status=d.get("status") or "published", questions=tuple(d.get("questions") or ()),
        )


@dataclass(frozen=True)
class ImportProblem:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


@dataclass
class ImportResult:
    articles: list[Article] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set, repr=False)


class ArticleError(ValueError):
    pass


def validate_record(rec: object) -> Article:
    """Turn one raw record (front matter + body, or a JSONL object) into an Article, or raise."""
    if not isinstance(rec, dict):
        raise ArticleError("record must be an object")
    missing = [k for k in ("id", "title", "body", "locale") if not rec.get(k)]
    if missing:
        raise ArticleError(f"missing required field(s): {', '.join(missing)}")
    for key in ("id", "title", "body", "locale"):
        if not isinstance(rec[key], str):
            raise ArticleError(f"field '{key}' must be a string")
    if not _ID_RE.match(rec["id"]):
        raise ArticleError(f"invalid id {rec['id']!r}: use letters, digits, '.', '_' or '-'")
    if not _LOCALE_RE.match(rec["locale"]):
        raise ArticleError(f"invalid locale {rec['locale']!r}: use a code like 'en' or 'pt-BR'")
    group = rec.get("group") or rec["id"]
    if not isinstance(group, str) or not _ID_RE.match(group):
        raise ArticleError(f"invalid group {group!r}")
    tags = rec.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ArticleError("'tags' must be a list of strings")
    questions = rec.get("questions") or []
    if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
        raise ArticleError("'questions' must be a list of non-empty strings")
    status = rec.get("status") or "published"
    if status not in STATUSES:
        raise ArticleError(f"invalid status {status!r}: one of {', '.join(STATUSES)}")
    return Article(
        id=rec["id"], title=rec["title"].strip(), body=rec["body"].strip(), locale=rec["locale"],
        group=group, tags=tuple(tags), status=status, questions=tuple(q.strip() for q in questions),
    )


def parse_markdown(text: str) -> dict:
    """Split '---' front matter from the Markdown body."""
    if not text.startswith("---"):
        raise ArticleError("no front matter: the file must start with '---'")
    parts = text.split("\n---", 1)
    if len(parts) != 2:
        raise ArticleError("front matter is not closed by a '---' line")
    head = parts[0][3:]
    body = parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""
    try:
        meta = yaml.safe_load(head) or {}
    except yaml.YAMLError as exc:
        raise ArticleError(f"front matter is not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(meta, dict):
        raise ArticleError("front matter must be a mapping")
    meta = dict(meta)
    meta["body"] = body
    return meta


def load_markdown_folder(folder: str | Path) -> ImportResult:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    result = ImportResult()
    for path in sorted(folder.rglob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        try:
            text = path.read_text(encoding="utf-8")
            _add_unique(result, validate_record(parse_markdown(text)), str(path), 1)
        except UnicodeDecodeError:
            result.problems.append(ImportProblem(str(path), 1, "not valid UTF-8"))
        except ArticleError as exc:
            result.problems.append(ImportProblem(str(path), 1, str(exc)))
    return result


def load_jsonl(path: str | Path) -> ImportResult:
    path = Path(path)
    result = ImportResult()
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
                _add_unique(result, validate_record(rec), str(path), lineno)
            except UnicodeDecodeError:
                result.problems.append(ImportProblem(str(path), lineno, "not valid UTF-8"))
            except json.JSONDecodeError as exc:
                result.problems.append(ImportProblem(str(path), lineno, f"not valid JSON: {exc.msg}"))
            except ArticleError as exc:
                result.problems.append(ImportProblem(str(path), lineno, str(exc)))
    return result


def load_source(source: str | Path) -> ImportResult:
    source = Path(source)
    if source.is_dir():
        return load_markdown_folder(source)
    if source.is_file() and source.suffix in (".jsonl", ".json", ".ndjson"):
        return load_jsonl(source)
    if not source.exists():
        raise FileNotFoundError(f"no such file or folder: {source}")
    raise ArticleError(f"unsupported source {source}: give a folder of Markdown files or a .jsonl file")


def _add_unique(result: ImportResult, art: Article, source: str, line: int) -> None:
    if art.id in result._ids:
        result.problems.append(ImportProblem(source, line, f"duplicate article id {art.id!r}: this copy skipped"))
    else:
        result._ids.add(art.id)
        result.articles.append(art)


def published(articles: Iterable[Article]) -> list[Article]:
    return [a for a in articles if a.status == "published"]
