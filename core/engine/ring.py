"""Pinned host buffers the renderer copies finished frames into (CUDA only: pinned allocation is slow, so the
buffers are made once and reused).

Why a buffer is handed out only when it is free: frames stay referenced after their batch, in the pacer's queue
and as the last frame shown (repeated on underrun). Real time renders whatever is ready, often one frame per
batch, so a fixed ring sized by `queue / max_batch` overwrote frames still waiting to be shown. The engine passes
the slots the pacer still holds; the ring hands out a free slot large enough for the batch, and allocates one
(sized to the batch, so single-frame batches cost single frames) only when none is free. The queue is bounded,
so the number of slots stops growing after warm-up; a new one replaces free slots too small to be of use.
"""

from __future__ import annotations

import torch


class HostRing:
    """(B, H, W, 3) uint8 pinned host buffers by slot id; `pinned=False` (no CUDA): no buffers at all."""

    def __init__(self, pinned: bool) -> None:
        self.pinned = pinned
        self.slots: dict[int, torch.Tensor] = {}
        self._next_id = 0
        self._image_shape: tuple[int, ...] = ()

    def take(self, image_shape: tuple[int, ...], batch: int, busy: set[int]) -> tuple[int, torch.Tensor | None]:
        """(slot id, a (batch, H, W, 3) buffer to render into); (-1, None) when the renderer returns its own."""
        if not self.pinned:
            return -1, None
        if tuple(image_shape) != self._image_shape:  # a new portrait size: old slots go once nothing shows them
            self.slots = {}  # frames still queued keep their own buffers alive (torch reference counting)
            self._image_shape = tuple(image_shape)
        for sid, buf in self.slots.items():
            if sid not in busy and buf.shape[0] >= batch:
                return sid, buf[:batch]
        for sid in [i for i, t in self.slots.items() if i not in busy and t.shape[0] < batch]:
            del self.slots[sid]  # free and too small: nothing references it
        sid, self._next_id = self._next_id, self._next_id + 1
        self.slots[sid] = torch.empty((batch, *image_shape), dtype=torch.uint8, pin_memory=True)
        return sid, self.slots[sid]

    @property
    def frames(self) -> int:
        """Frames of pinned memory held (what the ring costs)."""
        return sum(t.shape[0] for t in self.slots.values())
