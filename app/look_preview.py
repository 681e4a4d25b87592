"""The look's still preview while stopped: one frame of the portrait at rest with the look, rendered in a worker
(the newest request only, so a dragged slider renders what it ends on and never builds a backlog); the GUI never
waits for it. Kept apart from app/engine_bridge.py, which only adapts the live session to Qt."""

from __future__ import annotations

import numpy as np

from .errors import describe_error


async def still_preview_loop(bridge) -> None:
    """Render the bridge's newest still-preview request until none is left (or the bridge is no longer stopped)."""
    try:
        while bridge._preview_request is not None and bridge.state == "stopped":
            request, bridge._preview_request = bridge._preview_request, None
            try:
                frame = await bridge.tasks.run(render_still, bridge, *request)
            except Exception as exc:
                bridge.message.emit(f"Look preview: {describe_error(exc)}")
                continue
            if frame is not None and bridge.state == "stopped":
                bridge.previews += 1
                if bridge.mailbox.put(frame):
                    bridge.frame_ready.emit()
    finally:
        bridge._preview_busy = False


def render_still(bridge, settings, portrait: str, face: int, look) -> np.ndarray | None:
    """Worker: the portrait at rest with `look`, rendered by the full renderer of the session's pipeline
    (built on first use and kept for Start)."""
    from core import layout

    with bridge._render_lock:
        if bridge.state != "stopped":
            return None
        renderer, _ = bridge.session.pipeline(bridge.session_config(settings))
        prepared = renderer.prepare(portrait, face=face)
        renderer.look.set(look, ease=False)
        return renderer.render(prepared, np.zeros((1, layout.MOTION_DIM), np.float32))[0].copy()
