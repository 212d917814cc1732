"""A searcher that follows the published snapshot: when CURRENT changes, the new snapshot is
loaded beside the old one and swapped in with one reference assignment, so searches in flight
finish on the old snapshot and the next ones use the new."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from .encoders import Encoder
from .search import Searcher
from .snapshot import current_snapshot_path, load_snapshot

log = logging.getLogger(__name__)


class LiveKnowledgeBase:
    def __init__(self, root: str | Path, encoder: Encoder, default_locale: str = "en", encoder_threads: int = 1,
                 extra_encoders: dict[str, Encoder] | None = None):
        self.root = Path(root)
        self.encoder = encoder
        self.encoder_threads = encoder_threads
        self.extra_encoders: dict[str, Encoder] = dict(extra_encoders or {})
        self.default_locale = default_locale
        self._searcher: Searcher | None = None
        self._loaded_path: Path | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    @property
    def searcher(self) -> Searcher | None:
        return self._searcher

    @property
    def ready(self) -> bool:
        return self._searcher is not None

    def refresh(self) -> bool:
        """Load the published snapshot if it is newer than the one in use. True when swapped."""
        with self._lock:
            path = current_snapshot_path(self.root)
            if path is None:
                self.last_error = f"no published index snapshot under {self.root}"
                return False
            if path == self._loaded_path:
                return False
            try:
                snap = load_snapshot(path)
                # load any further encoder the snapshot was built with (e.g. MiniLM for hybrid search)
                for name, spec in snap.manifest.get("extra_encoder_specs", {}).items():
                    wanted = snap.manifest["extra_encoders"][name]
                    if name not in self.extra_encoders or self.extra_encoders[name].name != wanted:
                        from .encoders import load_encoder

                        self.extra_encoders[name] = load_encoder(spec, self.encoder_threads)
                searcher = Searcher(snap, self.encoder, self.default_locale, extra_encoders=self.extra_encoders)
            except Exception as exc:  # keep serving the old snapshot
                self.last_error = f"could not load snapshot {path.name}: {exc}"
                log.exception("could not load snapshot %s", path)
                return False
            self._searcher = searcher
            self._loaded_path = path
            self.last_error = None
            log.info("knowledge base snapshot %s loaded (%d articles)", searcher.version,
                     len(searcher.snapshot.articles))
            return True

    def start(self, interval: float = 1.0) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="kb-snapshot-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
