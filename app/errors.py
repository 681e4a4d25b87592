"""Errors in words for the window: one line a user can act on."""

from __future__ import annotations


def describe_error(exc: BaseException) -> str:
    """One line for users; out-of-memory gets its fix spelled out."""
    text = str(exc).strip() or type(exc).__name__
    if "out of memory" in text.lower():
        return (f"the GPU ran out of memory ({text.splitlines()[0]}). Close other GPU programs, lower the "
                "camera size, or choose the CPU device.")
    return text
