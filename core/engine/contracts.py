"""The interfaces the engine and the session call: renderers, audio sources and sinks (motion sources:
`core.motion.source.MotionSource`).

Why Protocols: two renderers (full and lite), three audio sources and several sinks meet in the engine, and the
engine used to find out what each could do by probing for optional methods and attributes (and a lite portrait
forwarded unknown attribute reads to the full one). Every implementation now
has every member below (a member with nothing to do is a no-op), so the engine calls them plainly and a type
checker can tell when one is missing. torch-free: only type names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .sinks import FrameInfo

Image = np.ndarray | str | Path  # an RGB uint8 photo, or a path to one
Progress = Callable[[int, int], None]  # (done, total) of a slow preparation
Deliver = Callable[[np.ndarray, float], None]  # (16 kHz mono samples, capture time of the first)


@runtime_checkable
class Portrait(Protocol):
    """What the engine reads from a prepared portrait; motion sources read the full renderer's fields
    (`core.render.PreparedPortrait`: kp, exp, x_s, face, ...), which a lite portrait also offers."""

    key: str
    image: np.ndarray  # (H, W, 3) uint8, the output canvas


@runtime_checkable
class FrameRenderer(Protocol):
    """`core.render.Renderer` (the networks) and `core.lite.LiteRenderer` (the atlas)."""

    spec: object  # core.device.DeviceSpec: where frames are made
    models: object  # core.liveportrait.LivePortraitModels: motion sources take the lip/eye MLPs from it
    look: object  # core.look_live.LookLayer: the look folded into every row it renders (set between batches)

    @property
    def backend_name(self) -> str:
        """What makes the frames, in a word (eager, onnx, cudagraph, lite ...), for status lines."""

    def ready(self, image: Image, face: int | None = None) -> bool:
        """Whether `prepare` is quick; False: it takes minutes (a lite atlas to build) and belongs on a thread
        of the caller's that can cancel it."""

    def prepare(self, image: Image, source_name: str | None = None, face: int | None = None,
                on_progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> Portrait:
        """Everything per portrait, once (cached by content); `cancel()` True stops a slow preparation."""

    def warm_up(self, portrait: Portrait, max_batch: int) -> None:
        """Do before a stream whatever the first render of each batch size would do (CUDA graph capture)."""

    def render(self, portrait: Portrait, motion: np.ndarray, out: object | None = None) -> np.ndarray:
        """Motion rows (B, 70 | 71) -> frames (B, H, W, 3) uint8 on the host (into `out` when given)."""


@runtime_checkable
class AudioSource(Protocol):
    """`core.engine.sources`: microphone, file, generator."""

    realtime: bool  # blocks arrive at the pace they were captured (False: a file read as fast as it goes)
    finished: threading.Event  # set once the last block was delivered
    on_error: Callable[[BaseException], None] | None  # set by the engine; called from the source's thread

    def start(self, deliver: Deliver) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Where finished frames go. `write` runs on the pacer (or worker) thread; a sink that fails raises
    `SinkFailure` naming itself (the engine wraps anything else)."""

    def write(self, frame: np.ndarray, info: FrameInfo) -> None: ...

    def close(self) -> None: ...
