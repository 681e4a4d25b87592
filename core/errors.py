"""Error types shared across layers. They live at the bottom of `core` so that any loader (LivePortrait,
JoyVASA, the DiT) can raise the one the command line and the app already report, without importing another
loader's module."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not match the network it should load into."""
