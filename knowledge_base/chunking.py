"""Turn an article into index entries.

Every article yields: its title, each "also asked as" question as its own entry, and its body
split into chunks of at most ``max_chars`` characters along headings and paragraphs. Each chunk
carries the title and its heading path, so that "Step 3: click Cancel" still says what it is about.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .articles import Article

_MD_NOISE = re.compile(r"(\*\*|__|`|\[([^\]]*)\]\([^)]*\))")


@dataclass(frozen=True)
class Entry:
    article_id: str
    kind: str  # "title" | "question" | "chunk"
    text: str  # what gets embedded
    ordinal: int  # position within the article, stable for a given article text


def _plain(md: str) -> str:
    return _MD_NOISE.sub(lambda m: m.group(2) or "", md).strip()


def split_sections(body: str) -> list[tuple[list[str], str]]:
    """Return (heading path, section text) pairs in document order."""
    sections: list[tuple[list[str], str]] = []
    path: list[tuple[int, str]] = []
    buf: list[str] = []

    def flush() -> None:
        text = "\n".join(buf).strip()
        if text:
            sections.append(([h for _, h in path], text))
        buf.clear()

    for line in body.splitlines():
        m = re.match(r"^(#{1,6})\s+(.*)$", line)
        if m:
            flush()
            level = len(m.group(1))
            path[:] = [(lvl, h) for lvl, h in path if lvl < level]
            path.append((level, _plain(m.group(2))))
        else:
            buf.append(line)
    flush()
    return sections


def _pack(paragraphs: list[str], max_chars: int) -> list[str]:
    chunks: list[str] = []
    cur = ""
    for para in paragraphs:
        para = para.strip()
        if not para:
            continue
        while len(para) > max_chars:  # one huge paragraph: cut at a sentence end if possible
            cut = max(para.rfind(". ", 0, max_chars), para.rfind("。", 0, max_chars))
            cut = cut + 1 if cut > max_chars // 3 else max_chars
            if cur:
                chunks.append(cur)
                cur = ""
            chunks.append(para[:cut].strip())
            para = para[cut:].strip()
        if cur and len(cur) + len(para) + 1 > max_chars:
            chunks.append(cur)
            cur = para
        else:
            cur = f"{cur}\n{para}" if cur else para
    if cur:
        chunks.append(cur)
    return chunks


def article_entries(article: Article, max_chars: int = 600) -> list[Entry]:
    entries = [Entry(article.id, "title", article.title, 0)]
    n = 1
    for q in article.questions:
        entries.append(Entry(article.id, "question", q, n))
        n += 1
    for heading_path, text in split_sections(article.body):
        prefix = " > ".join([article.title, *heading_path])
        for chunk in _pack(re.split(r"\n\s*\n", _plain(text)), max_chars):
            entries.append(Entry(article.id, "chunk", f"{prefix}: {chunk}", n))
            n += 1
    return entries
