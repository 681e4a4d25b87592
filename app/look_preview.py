"""The look's still preview while stopped: one frame of the portrait at rest with the look, rendered in a worker
(the newest request only, so a dragged slider renders what it ends on and never builds a backlog); the GUI never
waits for it. Kept apart from app/engine_bridge.py, which only adapts the live session to Qt: the bridge owns one
`StillPreview` and asks it through `request`, `busy` and `renderer_lock` (a start holds that lock too)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from .errors import describe_error
from .settings import AppSettings
from .tasks import TaskRunner


class StillPreview:
    """Owns the newest request, whether a worker renders one now, and the lock that keeps a still render and a
    start off the renderer at the same time. `pipeline(settings)` returns the session's (renderer, motion) for
    those settings, `stopped()` whether the bridge is stopped, `show(frame)` hands a frame to the preview,
    `say(text)` reports a failure."""

    def __init__(self, tasks: TaskRunner, pipeline: Callable[[AppSettings], tuple], stopped: Callable[[], bool],
                 show: Callable[[np.ndarray], None], say: Callable[[str], None]) -> None:
        self.tasks = tasks
        self._pipeline, self._stopped, self._show, self._say = pipeline, stopped, show, say
        self._request: tuple | None = None  # the newest (settings, portrait, face, look) not rendered yet
        self._busy = False
        self.renderer_lock = threading.Lock()  # a still preview and a start never use the renderer together
        self.shown = 0  # still previews handed to the preview (tests count them)

    @property
    def busy(self) -> bool:
        """A worker renders (or is about to render) a request."""
        return self._busy

    def request(self, settings: AppSettings, portrait: str, face: int, look) -> None:
        """Render this look next; replaces a request not started yet. Call on the GUI thread."""
        self._request = (settings, portrait, face, look)
        if not self._busy:
            self._busy = True
            self.tasks.spawn(self._loop())

    async def _loop(self) -> None:
        """Render the newest request until none is left (or the bridge is no longer stopped)."""
        try:
            while self._request is not None and self._stopped():
                request, self._request = self._request, None
                try:
                    frame = await self.tasks.run(self._render, *request)
                except Exception as exc:
                    self._say(f"Look preview: {describe_error(exc)}")
                    continue
                if frame is not None and self._stopped():
                    self.shown += 1
                    self._show(frame)
        finally:
            self._busy = False

    def _render(self, settings: AppSettings, portrait: str, face: int, look) -> np.ndarray | None:
        """Worker: the portrait at rest with `look`, rendered by the full renderer of the session's pipeline
        (built on first use and kept for Start)."""
        from core import layout

        with self.renderer_lock:
            if not self._stopped():
                return None
            renderer, _ = self._pipeline(settings)
            prepared = renderer.prepare(portrait, face=face)
            renderer.look.set(look, ease=False)
            return renderer.render(prepared, np.zeros((1, layout.MOTION_DIM), np.float32))[0].copy()
