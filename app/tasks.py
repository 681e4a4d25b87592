"""Run blocking work (face detection, weight loading, engine start/stop) off the GUI thread.

Results come back as a queued Qt signal, so callbacks run on the GUI thread whether or not an asyncio
(qasync) loop is installed; that keeps the window testable with plain pytest-qt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger(__name__)


class TaskRunner(QObject):
    """`unhandled(exc)`: where the error of a task submitted without `on_error` goes (the window shows it);
    it is logged with its traceback in any case, never dropped."""

    _done = Signal(object)

    def __init__(self, workers: int = 2, parent: QObject | None = None,
                 unhandled: Callable[[BaseException], None] | None = None):
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="headcast-task")
        self._done.connect(self._deliver)
        self.pending = 0
        self.unhandled = unhandled

    def submit(self, fn: Callable, *args, on_done: Callable | None = None,
               on_error: Callable[[BaseException], None] | None = None) -> Future:
        """Run `fn(*args)` in the pool; then `on_done(result)` or `on_error(exc)` on the GUI thread."""
        self.pending += 1

        def finished(fut: Future) -> None:
            self._done.emit((fut, on_done, on_error))

        fut = self._pool.submit(fn, *args)
        fut.add_done_callback(finished)
        return fut

    @Slot(object)
    def _deliver(self, item) -> None:
        fut, on_done, on_error = item
        self.pending -= 1
        exc = fut.exception()
        if exc is not None:
            if on_error is not None:
                on_error(exc)
            else:
                log.error("background task failed", exc_info=exc)
                if self.unhandled is not None:
                    self.unhandled(exc)
        elif on_done is not None:
            on_done(fut.result())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
