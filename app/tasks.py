"""Background work as asyncio tasks on the Qt event loop (qasync), blocking calls in a small thread pool.

A job is an `async def` that awaits `TaskRunner.run(fn, *args)` for the blocking part (face detection, engine
start/stop, the camera probe) and then touches widgets directly: the code after an `await` runs on the GUI
thread, so no result signals or callbacks are needed. A task that raises is logged with its traceback and
handed to `unhandled` (the window shows it); closing cancels what is pending and joins the pool's threads.

Which loop: `python -m app` runs a qasync `QEventLoop` (`run_until_complete`). Anything else that spins Qt
itself (pytest-qt's `waitUntil`, a script's `app.exec()`) gets one attached by `qt_loop()`: qasync delivers
every callback as a Qt timer or queued signal, so Qt's own loop drives it, and the loop is registered as the
GUI thread's running loop so `asyncio.sleep`, `current_task` and `get_running_loop` work inside the tasks.
`release_qt_loop()` undoes that (at `aboutToQuit`, and after each test in tests/conftest.py).
The pool holds plain Python threads, never qasync's default QThread executor: a QThread still alive when Python
exits aborts the process ("QThread: Destroyed while thread is still running").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import qasync
from PySide6.QtCore import QCoreApplication, QThread

log = logging.getLogger(__name__)
T = TypeVar("T")
DRAIN_S = 10.0  # how long release_qt_loop lets cancelled tasks finish (a cancel completes in one loop turn)

_attached: qasync.QEventLoop | None = None  # the loop qt_loop() attached to a Qt loop someone else runs
_hooked: list[QCoreApplication] = []  # the application whose aboutToQuit releases it (connected once)


def _check_gui_thread() -> QCoreApplication:
    app = QCoreApplication.instance()
    if app is None:
        raise RuntimeError("background tasks need a QApplication")
    if QThread.currentThread() is not app.thread():
        raise RuntimeError("background tasks are started from the GUI thread only")
    return app


def qt_loop() -> asyncio.AbstractEventLoop:
    """The GUI thread's asyncio loop: the running qasync loop, or one attached to Qt's loop on first use."""
    global _attached
    app = _check_gui_thread()
    loop = asyncio._get_running_loop()
    if loop is not None:
        if not isinstance(loop, qasync.QEventLoop):
            raise RuntimeError(f"the GUI thread runs a {type(loop).__name__}, not qasync's QEventLoop")
        return loop
    loop = _attached = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    asyncio._set_running_loop(loop)  # what qasync's run_forever does around app.exec(); here Qt runs already
    if app not in _hooked:
        _hooked[:] = [app]
        app.aboutToQuit.connect(release_qt_loop)
    return loop


def release_qt_loop(timeout: float = DRAIN_S) -> None:
    """Detach the loop `qt_loop()` attached: cancel its tasks, let them finish on Qt's loop, close it."""
    global _attached
    loop, _attached = _attached, None
    if loop is None or loop.is_closed():
        return
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    deadline = time.monotonic() + timeout
    while any(not t.done() for t in pending) and time.monotonic() < deadline:
        QCoreApplication.processEvents()
    stuck = [t for t in pending if not t.done()]
    if stuck:
        log.warning("%d task(s) did not finish within %.0f s of cancelling: %s", len(stuck), timeout, stuck)
    if asyncio._get_running_loop() is loop:
        asyncio._set_running_loop(None)
    asyncio.set_event_loop(None)
    loop.close()


class TaskRunner:
    """The window's background jobs. `unhandled(exc)`: where the error of a job that raised goes (the window
    shows it); it is logged with its traceback in any case, never dropped. `pending`: jobs not finished yet."""

    def __init__(self, workers: int = 2, unhandled: Callable[[BaseException], None] | None = None):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="headcast-task")
        self._tasks: set[asyncio.Task] = set()
        self.unhandled = unhandled
        self.closed = False

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def spawn(self, job: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Schedule `job` on the GUI thread's qasync loop; returns its task (cancelled at `shutdown`)."""
        if self.closed:
            job.close()
            raise RuntimeError("the task runner is shut down")
        task = qt_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def run(self, fn: Callable[..., T], *args) -> T:
        """`await` this from a job: `fn(*args)` runs in the pool while the GUI stays responsive."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task failed", exc_info=exc)
            if self.unhandled is not None:
                self.unhandled(exc)

    def shutdown(self) -> None:
        """At close: cancel pending jobs (their cancellation completes on the loop's next turn) and wait for the
        pool's threads, so none is inside native code when Python exits."""
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
