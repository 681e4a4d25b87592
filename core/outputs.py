"""The one check every output path passes before anything is computed: never write over an input, never
replace a file that is not an earlier output of the same kind, and find unwritable folders up front.

Why before the work: a render takes minutes, so `--out /sys/x.mp4` must fail in the first second with a
sentence, not with a PermissionError traceback (or the temporary file's name) at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

# what an existing file must start with to be replaced: (offset, magic) per output suffix
MAGIC = {
    ".mp4": (4, b"ftyp"),  # ISO base media
    ".npz": (0, b"PK\x03\x04"),  # a zip archive
}


NAME_MAX = 255  # bytes per file name on ext4, APFS, NTFS (UTF-16 units there) and most others


class OutputPathError(ValueError):
    """An output path that cannot or must not be written; the message names it and the fix."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _looks_like(path: Path, suffix: str) -> bool:
    if suffix not in MAGIC:
        return True
    offset, magic = MAGIC[suffix]
    try:
        with open(path, "rb") as f:
            head = f.read(offset + len(magic))
    except OSError:
        return False
    return head[offset:] == magic


def check_output(path: str | Path, suffix: str, inputs: dict[str, str | Path] | None = None,
                 option: str = "--out") -> Path:
    """Validate an output path; returns it. `inputs`: {"portrait": path, ...} that must never be overwritten.

    Raises OutputPathError when the suffix is wrong, the path is a folder or one of the inputs, an existing
    file there is not an earlier `suffix` output (e.g. a photo renamed .mp4), or its folder is not writable
    (checked by creating and removing a probe file, which also works for root and read-only mounts).
    """
    path = Path(path)
    size = len(os.fsencode(path.name))
    if size > NAME_MAX:
        raise OutputPathError(f"{option} {path.name[:40]}... is too long a file name ({size} bytes; file systems "
                              f"allow {NAME_MAX}). Choose a shorter name.")
    if path.is_dir():  # before the suffix: a folder named without .mp4 is a folder, not a wrong extension
        raise OutputPathError(f"{option} {path} is a folder; give a file name such as {path / ('out' + suffix)}.")
    if path.suffix.lower() != suffix:
        hint = f"; Headcast writes {suffix} only" if path.suffix else ""
        example = path.with_name(path.stem + suffix) if path.stem not in ("", ".", "..") else path / f"out{suffix}"
        raise OutputPathError(f"{option} must end in {suffix} (got {path}{hint}). Use e.g. {example}.")
    for what, other in (inputs or {}).items():
        if other is not None and _same_file(path, Path(other)):
            raise OutputPathError(f"{option} {path} is the {what} file itself; writing there would destroy it. "
                                  f"Choose another output name.")
    if path.exists() and not _looks_like(path, suffix):
        raise OutputPathError(f"{option} {path} already exists and is not a {suffix} file Headcast wrote "
                              "(it may be one of your inputs under another name); refusing to replace it. "
                              "Choose another name, or delete that file first.")
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"Cannot write {path}: {existing} is a file, not a folder.")
    if existing == folder:
        probe = folder / f".headcast.{os.getpid()}.probe"  # short: a long output name must not fail here
        try:
            probe.touch()
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise OutputPathError(f"Cannot write {path}: the folder {folder} is not writable ({reason}). "
                                  "Choose an output in a folder you can write to, e.g. your home folder.") from None
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"Cannot write {path}: cannot create folders in {existing} (permission denied). "
                              "Choose an output in a folder you can write to.")
    return path
