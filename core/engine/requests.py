"""Work other threads hand to the engine's worker (a portrait switch, new settings): it owns the device and the
motion source, so changes land between two batches, never under its feet."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

log = logging.getLogger(__name__)


class Requests:
    """A queue of callables the worker runs between batches; `call` waits for the result, `post` does not."""

    def __init__(self) -> None:
        self._queue: deque[tuple[Callable[[], object], Future | None]] = deque()

    def call(self, fn: Callable[[], object], wake: Callable[[], None], timeout: float = 120.0):
        future: Future = Future()
        self._queue.append((fn, future))
        wake()
        return future.result(timeout=timeout)

    def post(self, fn: Callable[[], object], wake: Callable[[], None] | None) -> None:
        self._queue.append((fn, None))
        if wake is not None:
            wake()

    def serve(self) -> None:
        """On the worker: run everything queued. A posted request that raises ends the run (the caller's
        guard reports it); a waited-for one hands the error to its caller."""
        while self._queue:
            fn, future = self._queue.popleft()
            try:
                result = fn()
                if future is not None:
                    future.set_result(result)
            except BaseException as exc:
                if future is None:
                    raise
                future.set_exception(exc)

    def fail(self, exc: BaseException) -> None:
        """No worker any more: waiting callers get `exc`; posted settings are applied here (nothing runs now)."""
        while self._queue:
            fn, future = self._queue.popleft()
            if future is not None:
                future.set_exception(exc)
            else:
                try:
                    fn()
                except Exception as err:
                    log.warning("applying settings after stop: %s", err)
