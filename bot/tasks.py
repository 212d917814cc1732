"""Background tasks a component owns: tracked, so that stop() can wait for them, and logged when
they fail instead of vanishing."""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class SpawnsTasks:
    """Mixin: ``self._tasks`` (a set) must exist; ``_task_label`` names the owner in logs."""

    _task_label = "background"
    _tasks: set

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: background task failed", self._task_label, exc_info=task.exception())


class Rounds:
    """A background loop: ``run_once`` every ``interval`` seconds from ``start`` until ``stop``; a
    round that fails (the database or Rasa is away) is logged and the next one tries again.
    Subclasses set ``interval`` and ``label`` and define ``run_once``."""

    interval = 5.0
    label = "background"
    _task: "asyncio.Task | None" = None

    async def run_once(self):
        raise NotImplementedError

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; the next round tries again
                log.warning("%s: this round failed", self.label, exc_info=True)


async def cancel_and_wait(task: "asyncio.Task | None") -> None:
    """Stop a background loop: cancel it and wait until it has ended (whatever it raised)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
        pass


class KeyedLocks:
    """One asyncio lock per key (a customer: their messages are answered in order), dropped when
    nobody holds or waits for it. ``async with locks(key): ...``"""

    def __init__(self):
        self._locks: dict[object, list] = {}

    def __call__(self, key):
        return _KeyedLock(self, key)


class _KeyedLock:
    def __init__(self, owner: KeyedLocks, key):
        self.owner, self.key = owner, key

    async def __aenter__(self):
        entry = self.owner._locks.setdefault(self.key, [asyncio.Lock(), 0])
        entry[1] += 1
        await entry[0].acquire()

    async def __aexit__(self, *exc):
        entry = self.owner._locks[self.key]
        entry[0].release()
        entry[1] -= 1
        if entry[1] == 0:
            del self.owner._locks[self.key]
