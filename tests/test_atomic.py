"""core/atomic.py: one atomic writer; temporary names carry the writer's pid, so leftovers of killed writers
are removed by the next write; the app writes only through it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from core.atomic import atomic_path, stale_temporaries

REPO = Path(__file__).resolve().parents[1]


def test_leftovers_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    target = tmp_path / "settings.json"
    stale = tmp_path / f".settings.json.{dead.pid}.x1.tmp"
    stale.write_text("half")
    alive = tmp_path / f".settings.json.{os.getppid()}.x2.tmp"
    alive.write_text("being written")
    other = tmp_path / f".other.json.{dead.pid}.x3.tmp"  # another target's file is not touched
    other.write_text("x")
    assert stale_temporaries(target) == [stale]
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(f".settings.json.{os.getpid()}.")
        tmp.write_text("{}")
    assert target.read_text() == "{}" and not stale.exists() and alive.exists() and other.exists()


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"x")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["library.py", "settings.py", "first_run.py"])
def test_the_app_writes_files_only_through_core_atomic(name):
    text = (REPO / "app" / name).read_text(encoding="utf-8")
    assert "mkstemp" not in text and "os.fdopen" not in text and "urlopen" not in text
