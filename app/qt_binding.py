"""Refuse a Qt binding that corrupts Python's reference count of None.

Why: PySide6 6.12.0 on Python 3.10/3.11 drops one reference to None on every Qt call that returns nothing
(`setText`, `update`, `fillRect`, ...). The window makes hundreds of such calls a second, and Python aborts
("Fatal Python error: none_dealloc") when None's count reaches zero: 8-12 minutes into a call. pyproject.toml
keeps new installs off that version; this check catches an environment that has it anyway (an older venv, a
bundle built from one) and says how to fix it before the user goes live, instead of crashing mid-call. On Python
3.12+ None is immortal, the measurement shows no drop and the check passes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

PROBE_CALLS = 64  # void calls made to measure; a leaking binding drops exactly this many references
FIX_REQUIREMENT = "PySide6-Essentials>=6.6,<6.12"  # the range pyproject.toml asks for on Python < 3.12


def drops_none_references(call: Callable[[], object] | None = None, calls: int = PROBE_CALLS) -> bool:
    """True when `call` (default: a Qt method that returns nothing) lowers `sys.getrefcount(None)`."""
    if call is None:
        from PySide6.QtCore import QObject

        probe = QObject()

        def call() -> None:
            probe.setObjectName("headcast-refcount-probe")

    call()  # a first call may fill caches (enum lookups, signatures) and move the count once
    before = sys.getrefcount(None)
    for _ in range(calls):
        call()
    return before - sys.getrefcount(None) >= calls // 2


def binding_problem(call: Callable[[], object] | None = None) -> str | None:
    """The one-line reason the installed Qt binding cannot run the app, or None when it can."""
    if not drops_none_references(call):
        return None
    import PySide6

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if getattr(sys, "frozen", False):
        fix = f"this build of Headcast is broken; use a release built with {FIX_REQUIREMENT}"
    else:
        fix = f"run: {sys.executable} -m pip install '{FIX_REQUIREMENT}' (or `make run`, which installs it)"
    return (f"PySide6 {PySide6.__version__} has a bug on Python {python} that would crash Headcast within minutes "
            f"(every Qt call drops a reference to None); {fix}.")
