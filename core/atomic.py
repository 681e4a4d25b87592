"""Atomic file writing: write to a temporary name beside the target, rename only when complete.

Why one helper: every file Headcast writes (weights, checkpoints, settings, renders, motion dumps) must never
be left half-written under its real name, and the rule is easy to get subtly wrong when repeated.

Temporary names carry the writer's process id (`.NAME.<pid>.<random><suffix>`). A process killed outright
(SIGKILL, power loss) cannot remove its temporary file, so the next write to the same target removes the
temporary files of processes that no longer exist: nothing hidden stays behind for ever.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a reused id counts as alive: its file then waits a run)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists but belongs to someone else
        return True
    return True


TEMP_NAME_BYTES = 180  # a target's name longer than this is shortened in its temporary names (+ a hash)


def temporary_stem(path: Path) -> str:
    """The target's name as its temporary files carry it. Why shortened: a file system allows 255 bytes per name,
    so a valid 240-byte output name plus `.<pid>.<random>.partial.mp4` could not be created at all."""
    name = path.name
    raw = os.fsencode(name)
    if len(raw) <= TEMP_NAME_BYTES:
        return name
    import hashlib

    head = raw[:TEMP_NAME_BYTES - 13].decode("utf-8", "ignore")  # "ignore": never half a character
    return f"{head}~{hashlib.sha1(raw).hexdigest()[:12]}"


def stale_temporaries(path: str | Path, suffix: str = ".tmp") -> list[Path]:
    """Temporary files for `path` (this module's naming) whose writing process is gone."""
    path = Path(path)
    stem = temporary_stem(path)
    prefix = f".{stem}."
    stale = []
    try:
        candidates = list(path.parent.glob(f".{glob_escape(stem)}.*{suffix}"))
    except OSError:
        return []
    for p in candidates:
        pid = p.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            stale.append(p)
    return stale


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def temporary_path(path: str | Path, suffix: str = ".tmp") -> Path:
    """Create (empty) and return a temporary file beside `path`, named for this process; stale ones of
    dead processes for the same target are removed first."""
    path = Path(path)
    for old in stale_temporaries(path, suffix):
        old.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{temporary_stem(path)}.{os.getpid()}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    tmp_path = temporary_path(path, suffix)
    try:
        yield tmp_path
        commit(tmp_path, path, mode)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def commit(tmp: str | Path, path: str | Path, mode: int = 0o644) -> Path:
    """Finish an atomic write: give the complete temporary file its permissions and rename it over `path`.
    For writers that own the temporary file for a while (a video muxer: `temporary_path` + `commit`)."""
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return Path(path)


def set_aside(path: str | Path, suffix: str = ".bad") -> Path | None:
    """Rename a damaged file to NAME<suffix> beside it: kept for inspection, never read again under its real
    name. Returns the new path, or None when it could not be moved (the caller says so)."""
    path = Path(path)
    aside = path.with_name(path.name + suffix)
    try:
        os.replace(path, aside)
    except OSError:
        return None
    return aside
