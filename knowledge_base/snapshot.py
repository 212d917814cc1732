"""Index snapshots: a folder with a manifest, the FAISS index, the entries, their vectors and the
articles, published atomically by replacing a one-line ``CURRENT`` pointer file.

A build reuses the vectors of unchanged entries from the current snapshot (keyed by encoder and
text hash), so editing one article re-embeds only that article.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .articles import Article, published
from .chunking import Entry, article_entries
from .decision import DecisionPolicy
from .encoders import Encoder
from .index import APPROX_THRESHOLD, VectorIndex, stable_id

FORMAT_VERSION = 1
CHUNKER_VERSION = "chunk-v1-600"
POINTER = "CURRENT"
KEEP_SNAPSHOTS = 3


def _h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def source_hash(articles: Iterable[Article], encoder_name: str, extra: str = "") -> str:
    """Hash of everything a snapshot is built from: when it is unchanged, nothing needs building."""
    h = hashlib.sha256()
    h.update(f"{FORMAT_VERSION}|{CHUNKER_VERSION}|{encoder_name}|{extra}".encode())
    for art in sorted(published(articles), key=lambda a: a.id):
        h.update(json.dumps(art.to_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:24]


@dataclass
class SnapshotRecord:
    id: int
    article_id: str
    kind: str
    text: str
    text_hash: str


@dataclass
class Snapshot:
    path: Path
    manifest: dict
    index: VectorIndex
    records: dict[int, SnapshotRecord]
    articles: dict[str, Article]
    vectors: np.ndarray | None = None
    order: list[int] = field(default_factory=list)
    # hybrid retrieval (knowledge_base.fusion): the secondary encoder's entry vectors, in `order`,
    # and the fitted scorer's JSON state
    extra_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    hybrid: dict | None = None

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def decision(self) -> DecisionPolicy:
        return DecisionPolicy.from_dict(self.manifest.get("decision") or {})


def current_snapshot_path(root: str | Path) -> Path | None:
    root = Path(root)
    try:
        name = (root / POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = root / "snapshots" / name
    return path if (path / "manifest.json").is_file() else None


def load_snapshot(path: str | Path, with_vectors: bool = False) -> Snapshot:
    path = Path(path)
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"snapshot {path} has format {manifest.get('format')}, expected {FORMAT_VERSION}")
    index = VectorIndex.load(path / "index.faiss", manifest["dim"], kind=manifest.get("index_kind", "flat"),
                             nprobe=manifest.get("nprobe", 16))
    records: dict[int, SnapshotRecord] = {}
    order: list[int] = []
    with (path / "entries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            rec = SnapshotRecord(r["id"], r["article_id"], r["kind"], r["text"], r["h"])
            records[rec.id] = rec
            order.append(rec.id)
    articles: dict[str, Article] = {}
    with (path / "articles.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            art = Article.from_dict(json.loads(line))
            articles[art.id] = art
    hybrid_path = path / "hybrid.json"
    hybrid = json.loads(hybrid_path.read_text(encoding="utf-8")) if hybrid_path.exists() else None
    if hybrid is not None:
        with_vectors = True  # the hybrid scorer scores every entry with every encoder
    vectors = np.load(path / "vectors.npy") if with_vectors else None
    extra = {}
    for name in manifest.get("extra_encoders", {}):
        extra[name] = np.load(path / f"vectors_{name}.npy") if with_vectors else None
    if index.count != len(records):
        raise ValueError(f"snapshot {path} is inconsistent: {index.count} vectors, {len(records)} entries")
    return Snapshot(path, manifest, index, records, articles, vectors, order, extra, hybrid)


def load_current(root: str | Path, with_vectors: bool = False) -> Snapshot | None:
    path = current_snapshot_path(root)
    return load_snapshot(path, with_vectors) if path else None


ProgressFactory = Callable[[int, str], object]


def prepare_snapshot(
    root: str | Path,
    articles: Iterable[Article],
    encoder: Encoder,
    decision: DecisionPolicy | None = None,
    *,
    batch_size: int = 64,
    approx_threshold: int = APPROX_THRESHOLD,
    progress: Callable[[int], None] | None = None,
    extra_manifest: dict | None = None,
    source_key_extra: str = "",
    max_chars: int = 600,
    extra_encoders: dict[str, Encoder] | None = None,
) -> Snapshot:
    """Embed (reusing known vectors) and index the published articles, in memory only."""
    root = Path(root)
    arts = sorted(published(articles), key=lambda a: a.id)
    entries: list[Entry] = [e for a in arts for e in article_entries(a, max_chars=max_chars)]
    ids = np.array([stable_id(e.article_id, e.ordinal) for e in entries], dtype=np.int64)
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("entry id collision: two entries hash to the same id")
    hashes = [_h(e.text) for e in entries]

    known: dict[str, np.ndarray] = {}
    try:
        prev = load_current(root, with_vectors=True)
    except Exception:  # a damaged previous snapshot is simply not reused
        prev = None
    if prev is not None and prev.manifest.get("encoder") == encoder.name and prev.vectors is not None:
        for pos, rid in enumerate(prev.order):
            known[prev.records[rid].text_hash] = prev.vectors[pos]

    vectors = np.zeros((len(entries), encoder.dim), dtype=np.float32)
    todo = [i for i, h in enumerate(hashes) if h not in known]
    for i, h in enumerate(hashes):
        if h in known:
            vectors[i] = known[h]
    if progress and len(entries) - len(todo):
        progress(len(entries) - len(todo))
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        vectors[batch] = encoder.encode([entries[i].text for i in batch], batch_size=batch_size)
        if progress:
            progress(len(batch))

    extra_vectors: dict[str, np.ndarray] = {}
    for name, enc in (extra_encoders or {}).items():
        known_x: dict[str, np.ndarray] = {}
        if prev is not None and prev.manifest.get("extra_encoders", {}).get(name) == enc.name \
                and prev.extra_vectors.get(name) is not None:
            for pos, rid in enumerate(prev.order):
                known_x[prev.records[rid].text_hash] = prev.extra_vectors[name][pos]
        xv = np.zeros((len(entries), enc.dim), dtype=np.float32)
        todo_x = [i for i, h in enumerate(hashes) if h not in known_x]
        for i, h in enumerate(hashes):
            if h in known_x:
                xv[i] = known_x[h]
        for start in range(0, len(todo_x), batch_size):
            batch = todo_x[start:start + batch_size]
            xv[batch] = enc.encode([entries[i].text for i in batch], batch_size=batch_size)
        extra_vectors[name] = xv

    index = None
    if (prev is not None and prev.manifest.get("encoder") == encoder.name and prev.index.kind == "ivf"
            and len(ids) >= approx_threshold):
        # Incremental: keep the trained IVF index, remove what changed or went, add what is new.
        new_ids = {int(i): h for i, h in zip(ids.tolist(), hashes)}
        stale = [rid for rid, rec in prev.records.items() if new_ids.get(rid) != rec.text_hash]
        fresh = [pos for pos, (i, h) in enumerate(zip(ids.tolist(), hashes))
                 if prev.records.get(int(i)) is None or prev.records[int(i)].text_hash != h]
        if len(stale) + len(fresh) <= len(ids) // 10:  # small edits only; otherwise retrain
            index = prev.index.clone()
            index.remove(np.array(stale, dtype=np.int64))
            index.add(ids[fresh], vectors[fresh])
    if index is None:
        index = VectorIndex.build(encoder.dim, ids, vectors, approx_threshold=approx_threshold)
    version_h = hashlib.sha256()
    version_h.update(f"{FORMAT_VERSION}|{CHUNKER_VERSION}|{encoder.name}|{index.kind}".encode())
    for name, enc in sorted((extra_encoders or {}).items()):
        version_h.update(f"|{name}={enc.name}".encode())
    for i, h in zip(ids.tolist(), hashes):
        version_h.update(f"{i}:{h};".encode())
    manifest = {
        "format": FORMAT_VERSION,
        "version": version_h.hexdigest()[:16],
        "source_hash": source_hash(arts, encoder.name, source_key_extra),
        "encoder": encoder.name,
        "dim": encoder.dim,
        "chunker": CHUNKER_VERSION,
        "index_kind": index.kind,
        "nprobe": index.nprobe,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "articles": len(arts),
        "entries": len(entries),
        "reused_vectors": len(entries) - len(todo),
        "embedded_vectors": len(todo),
        "decision": (decision or DecisionPolicy()).to_dict(),
        "extra_encoders": {name: enc.name for name, enc in (extra_encoders or {}).items()},
        **(extra_manifest or {}),
    }
    records = {int(i): SnapshotRecord(int(i), e.article_id, e.kind, e.text, h)
               for i, e, h in zip(ids.tolist(), entries, hashes)}
    return Snapshot(root, manifest, index, records, {a.id: a for a in arts}, vectors,
                    [int(i) for i in ids.tolist()], extra_vectors)


def commit_snapshot(root: str | Path, snap: Snapshot) -> Snapshot:
    """Write a prepared snapshot to disk and publish it atomically."""
    assert snap.vectors is not None
    records = [{"id": r.id, "article_id": r.article_id, "kind": r.kind, "text": r.text, "h": r.text_hash}
               for r in (snap.records[i] for i in snap.order)]
    path = write_snapshot(Path(root), snap.manifest, snap.index, records, snap.vectors,
                          list(snap.articles.values()), snap.extra_vectors, snap.hybrid)
    return load_snapshot(path)


def build_snapshot(root: str | Path, articles: Iterable[Article], encoder: Encoder,
                   decision: DecisionPolicy | None = None, **kwargs) -> Snapshot:
    return commit_snapshot(root, prepare_snapshot(root, articles, encoder, decision, **kwargs))


def write_snapshot(root: Path, manifest: dict, index: VectorIndex, records: list[dict],
                   vectors: np.ndarray, articles: list[Article], extra_vectors: dict | None = None,
                   hybrid: dict | None = None) -> Path:
    snaps = root / "snapshots"
    snaps.mkdir(parents=True, exist_ok=True)
    tmp = snaps / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        index.save(tmp / "index.faiss")
        np.save(tmp / "vectors.npy", vectors)
        for name, vecs in (extra_vectors or {}).items():
            np.save(tmp / f"vectors_{name}.npy", vecs)
        if hybrid is not None:
            (tmp / "hybrid.json").write_text(json.dumps(hybrid), encoding="utf-8")
        with (tmp / "entries.jsonl").open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        with (tmp / "articles.jsonl").open("w", encoding="utf-8") as fh:
            for a in articles:
                fh.write(json.dumps(a.to_dict(), ensure_ascii=False) + "\n")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{manifest['version']}-{uuid.uuid4().hex[:6]}"
        final = snaps / name
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish(root, final.name)
    _prune(snaps, keep=final.name)
    return final


def publish(root: Path, name: str) -> None:
    """Point CURRENT at a snapshot folder: one atomic rename, so readers see old or new, never half."""
    tmp = root / f".{POINTER}.{uuid.uuid4().hex}"
    tmp.write_text(name + "\n", encoding="utf-8")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, root / POINTER)


def _prune(snaps: Path, keep: str) -> None:
    folders = sorted((p for p in snaps.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.name)
    for old in folders[:-KEEP_SNAPSHOTS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
