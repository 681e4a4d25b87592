"""Pinned host buffers the renderer copies finished frames into (CUDA only: pinned allocation is slow, so the
buffers are made once and reused).

Why a slot is handed out only when it is free: frames stay referenced after their batch, in the pacer's queue
and as the last frame shown (repeated on underrun). Real time renders whatever is ready, often one frame per
batch, so a fixed ring sized by `queue / max_batch` would overwrite frames still waiting to be shown. The
engine passes the slots the pacer still holds; the ring skips them and grows by a slot when all are held (during
warm-up only: the queue is bounded, so the ring stops growing).
"""

from __future__ import annotations

import torch


class HostRing:
    """Round-robin (max_batch, H, W, 3) uint8 host buffers; `pinned=False` (no CUDA): no buffers at all."""

    def __init__(self, pinned: bool) -> None:
        self.pinned = pinned
        self.slots: list[torch.Tensor] = []
        self._next = 0
        self._shape: tuple[int, ...] = ()

    def take(self, image_shape: tuple[int, ...], max_batch: int, batch: int,
             busy: set[int]) -> tuple[int, torch.Tensor | None]:
        """(slot id, a (batch, H, W, 3) view to render into); (-1, None) when the renderer returns its own."""
        if not self.pinned:
            return -1, None
        shape = (max_batch, *image_shape)
        if shape != self._shape:  # a new portrait size: the old buffers go once nothing shows them
            self.slots, self._next, self._shape = [], 0, shape
        n = len(self.slots)
        for k in range(n):
            i = (self._next + k) % n
            if i not in busy:
                self._next = (i + 1) % n
                return i, self.slots[i][:batch]
        self.slots.append(torch.empty(shape, dtype=torch.uint8, pin_memory=True))
        self._next = 0
        return n, self.slots[n][:batch]
