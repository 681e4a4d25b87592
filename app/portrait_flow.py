"""What the window does with portraits: adding photos (a dialog, drops on the list or the window) with face
detection in the background, removing, picking which face of a group photo, choosing the current portrait
(and its look) and stepping through the library. The library panel shows; the library stores; this decides.
Testable alone with a `LibraryPanel`, a `PortraitLibrary` and a bridge."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from core.face import FACE_ORDER

from .engine_bridge import EngineBridge
from .library import (
    IMAGE_KINDS,
    IMAGE_SUFFIXES,
    Portrait,
    PortraitError,
    PortraitLibrary,
    analyse_portrait,
    collect_image_files,
)
from .library_panel import LibraryPanel
from .look_panel import LookPanel
from .settings import AppSettings
from .tasks import TaskRunner


class PortraitFlow:
    """Owns which portrait is current and the photos being analysed (`adding`: jobs not finished). `say` shows a
    message, `flash(text, ms)` the status bar, `save` persists the settings, `selection_changed` runs first on
    every change of the current portrait (the window's Start follows it)."""

    def __init__(self, parent: QWidget, panel: LibraryPanel, library: PortraitLibrary, look_panel: LookPanel, *,
                 tasks: TaskRunner, bridge: EngineBridge, settings: AppSettings, say: Callable[..., None],
                 flash: Callable[..., None], save: Callable[[], None], selection_changed: Callable[[], None]) -> None:
        self.parent, self.panel, self.library, self.look_panel = parent, panel, library, look_panel
        self.tasks, self.bridge, self.settings = tasks, bridge, settings
        self.say, self.flash, self.save, self.selection_changed = say, flash, save, selection_changed
        self.list = panel.portrait_list
        self.adding = 0
        self.list.files_dropped.connect(self.add_paths)
        self.list.currentRowChanged.connect(self.select)
        panel.face_combo.activated.connect(self.choose_face)
        panel.add_button.clicked.connect(self.add_dialog)
        panel.remove_button.clicked.connect(self.remove_current)
        look_panel.look_changed.connect(self.look_changed)

    def restore(self) -> None:
        """List the library and make the saved portrait (else the first) current."""
        self.list.set_portraits(self.library.portraits)
        if self.settings.last_portrait is not None:
            i = self.library.index_of(self.settings.last_portrait)
            if i >= 0:
                self.list.setCurrentRow(i)
        if self.list.currentRow() < 0 and len(self.library):
            self.list.setCurrentRow(0)

    # ---- adding -------------------------------------------------------------------------------------
    def add_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self.parent, "Add portraits", str(Path.home()),
                                                f"Images ({' '.join('*' + s for s in IMAGE_SUFFIXES)})")
        if files:
            self.add_paths([Path(f) for f in files])

    def add_paths(self, paths: list[Path]) -> None:
        """Analyse dropped files/folders in the background; each result lands via `_added`."""
        files, skipped = collect_image_files([Path(p) for p in paths])
        for s in skipped:
            self.say(f"Skipped {s}", warning=True)
        if not files:
            if not skipped:
                self.say(f"No {IMAGE_KINDS} images in what was dropped.", warning=True)
            return
        self.flash(f"Finding faces in {len(files)} image(s)…")
        for f in files:
            self.adding += 1
            self.tasks.spawn(self._add(f))

    async def _add(self, path: Path) -> None:
        try:
            portrait = await self.tasks.run(self._analyse, path)
        except Exception as exc:
            self._rejected(exc)
        else:
            self._added(portrait)

    def _analyse(self, path: Path) -> Portrait:
        """Worker thread: the shared cropper is created on first use (under a lock)."""
        return analyse_portrait(path, self.bridge.get_cropper(), self.library.folder)

    def _added(self, portrait: Portrait) -> None:
        """Stopped: the new portrait becomes the current one. Live: it joins the library only; what the call sees
        changes when the user picks it (click, Ctrl+Left/Right), never because a photo finished loading."""
        self.adding -= 1
        i = self.library.add(portrait)
        self.list.set_portraits(self.library.portraits)
        if self.bridge.state in ("running", "starting"):
            self.flash(f"Added {portrait.name} to the library; click it (or press Ctrl+Right) to switch the call "
                       "to it", 8000)
        else:
            self.list.setCurrentRow(i)
            self.select(i)
            self.flash(f"Added {portrait.name}", 5000)
        if portrait.faces > 1:  # never a silent choice
            self.say(f"{portrait.name} has {portrait.faces} faces; animating face {portrait.face + 1} "
                     f"(faces are numbered {FACE_ORDER}). Pick another under “Detected face”.")

    def _rejected(self, exc: BaseException) -> None:
        self.adding -= 1
        if isinstance(exc, PortraitError):
            self.say(f"Not added: {exc}", warning=True)
        else:
            self.say(f"Could not add a portrait: {type(exc).__name__}: {exc}", warning=True)

    # ---- faces, removing ----------------------------------------------------------------------------
    def choose_face(self, index: int) -> None:
        """Crop face `index` (FACE_ORDER) of the current portrait in the background, then use it."""
        p = self.current()
        if p is None or index == p.face or not 0 <= index < p.faces:
            return
        self.panel.face_combo.setEnabled(False)
        self.tasks.spawn(self._crop_face(Path(p.path), index))

    async def _crop_face(self, path: Path, index: int) -> None:
        try:
            portrait = await self.tasks.run(analyse_portrait, path, self.bridge.get_cropper(), self.library.folder,
                                            index)
        except Exception as exc:
            self.panel.face_combo.setEnabled(True)
            self.say(f"Could not use face {index + 1}: {exc}", warning=True)
            self.select(self.list.currentRow())
            return
        self.panel.face_combo.setEnabled(True)
        i = self.library.add(portrait)
        self.select(i)
        if self.bridge.running:
            self.bridge.set_portrait(portrait.path, portrait.face)

    def remove_current(self) -> None:
        i = self.list.currentRow()
        if i >= 0:
            self.library.remove(i)
            self.list.set_portraits(self.library.portraits)
            self.list.setCurrentRow(min(i, len(self.library) - 1))
            if not len(self.library):
                self.select(-1)

    # ---- the current portrait -----------------------------------------------------------------------
    def current(self) -> Portrait | None:
        i = self.list.currentRow()
        return self.library[i] if 0 <= i < len(self.library) else None

    def select(self, row: int) -> None:
        """Row `row` became current (-1: none): show it, use its look, remember it, and switch a running call."""
        p = self.library[row] if 0 <= row < len(self.library) else None
        self.selection_changed()
        self.panel.show_portrait(p)
        if p is None:
            return
        self.look_panel.set_look(self.library.look_of(row))  # each portrait remembers its look
        self.bridge.set_look(self.look_panel.look())
        changed = self.settings.last_portrait != p.path
        self.settings.last_portrait = p.path
        if changed:
            self.save()  # now, not at close: after a crash or a kill the app comes back on this portrait
        if self.bridge.running and changed:
            self.bridge.set_portrait(p.path, p.face)

    def step(self, step: int) -> None:
        n = len(self.library)
        if n:
            self.list.setCurrentRow((max(self.list.currentRow(), 0) + step) % n)

    def look_changed(self, look) -> None:
        """A slider moved: remember it for this portrait; live it eases in, stopped a still preview shows it."""
        note = look.lite_note() if self.settings.renderer != "full" else None
        self.look_panel.set_note(f"If lite mode runs: {note}." if note else "")
        i = self.list.currentRow()
        p = self.current()
        if p is None:
            self.bridge.set_look(look)
            return
        try:
            self.library.set_look(i, look)
        except OSError as exc:
            self.flash(f"Could not save the look: {exc}", 10000)
        self.bridge.set_look(look, dataclasses.replace(self.settings), p.path, p.face)
