"""The main window: portrait library, input picker with level meter, outputs, preview, settings, status.

Everything slow happens elsewhere: face detection and model loading in `TaskRunner` jobs (asyncio tasks on
the Qt loop whose blocking part runs in a thread pool), rendering in the engine's own thread (through
`EngineBridge`). The window only reacts to signals, timers and finished jobs.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.face import FACE_ORDER
from resources import resource_dir

from . import audio_io
from .engine_bridge import NO_MICROPHONE, EngineBridge, InputChoice
from .io_panels import NO_INPUT, InputPanel, OutputsPanel
from .library import IMAGE_KINDS, IMAGE_SUFFIXES, PortraitError, PortraitLibrary, analyse_portrait, collect_image_files
from .library_panel import LibraryPanel
from .look_panel import LookPanel
from .preview_panel import STATUS_HELP, PreviewPanel, status_text  # noqa: F401  (status_text: public name)
from .settings import AUTO_DELAY, AppSettings, data_dir, save_settings
from .settings_panel import RESOLUTIONS, SettingsPanel  # noqa: F401  (RESOLUTIONS: the window's public name)
from .tasks import TaskRunner
from .voice import Voice
from .widgets import VerticalScroll, WheelGuard, dropped_paths

log = logging.getLogger(__name__)
RESOURCES = resource_dir()  # package data: found in a checkout, a wheel and a bundle alike

SHORTCUTS = (
    ("Start / stop", "F5"),
    ("Mute the avatar (idle motion)", "Ctrl+M"),
    ("Next portrait", "Ctrl+Right"),
    ("Previous portrait", "Ctrl+Left"),
    ("Add portraits", "Ctrl+O"),
    ("Keyboard shortcuts", "F1"),
)
NEEDS_PORTRAIT = "Add a portrait first: drop a photo here or on the library, or press Ctrl+O."


def icon(name: str) -> QIcon:
    path = RESOURCES / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings, *, synthetic: str | None = None,
                 warnings: list[str] | None = None, library_dir: Path | None = None,
                 bridge: EngineBridge | None = None):
        super().__init__()
        self.settings = settings
        self.synthetic = synthetic
        self.messages: list[str] = []
        self._message_keys: set[str] = set()
        self.tasks = TaskRunner(unhandled=lambda exc: self.show_message(
            f"A background task failed: {type(exc).__name__}: {exc}", warning=True))
        self.library = PortraitLibrary(library_dir or data_dir() / "portraits")
        self.bridge = bridge or EngineBridge(self.tasks, synthetic=synthetic, parent=self)
        self._adding = 0
        self._restoring = True
        self.camera_available: bool | None = None  # None until the background probe answers
        self._camera_probe_label = ""
        self._build()
        self.voice = Voice(settings, self.level_meter, self.delay_label, self.bridge.latency_ms,
                           self.bridge.input_level, self.show_message)
        self._connect()
        self.setAcceptDrops(True)
        self._meter_timer = QTimer(self, interval=50, timeout=self._update_meter)
        self._meter_timer.start()
        self._stats_timer = QTimer(self, interval=500, timeout=self._update_stats)
        self._stats_timer.start()
        for w in [*(warnings or []), *self.library.warnings, *self.look_panel.store.problems]:
            self.show_message(w, warning=True)
        self._restore()

    # ---- construction -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.setWindowTitle("Headcast" + (f" — synthetic {self.synthetic} weights" if self.synthetic else ""))
        self.setWindowIcon(icon("headcast"))
        self.resize(1180, 720)

        # library column
        self.library_panel = lib_box = LibraryPanel(icon("add"), icon("remove"))
        self.portrait_list, self.crop_label, self.face_combo = (lib_box.portrait_list, lib_box.crop_label,
                                                                lib_box.face_combo)
        self.add_button, self.remove_button = lib_box.add_button, lib_box.remove_button

        # centre: banner, messages, preview, renderer / atlas, start
        self.preview_panel = centre = PreviewPanel(self.synthetic, icon("start"), icon("mute"))
        self.synthetic_label, self.message_panel, self.preview = (centre.synthetic_label, centre.message_panel,
                                                                  centre.preview)
        self.start_button, self.mute_button = centre.start_button, centre.mute_button
        self.renderer_label, self.atlas_bar = centre.renderer_label, centre.atlas_bar
        self.centre_layout = centre.layout_

        # right column: input, outputs, settings
        self.input_panel = in_box = InputPanel(icon("refresh"))
        self.input_combo, self.refresh_inputs_button = in_box.input_combo, in_box.refresh_inputs_button
        self.level_meter, self.loop_check = in_box.level_meter, in_box.loop_check
        self.outputs_panel = out_box = OutputsPanel()
        self.camera_check, self.camera_label = out_box.camera_check, out_box.camera_label
        self.audio_out_check, self.audio_out_combo = out_box.audio_out_check, out_box.audio_out_combo
        self.delay_spin, self.delay_label = out_box.delay_spin, out_box.delay_label

        self.settings_panel = set_box = SettingsPanel()
        # the window's names for the panel's controls (tests and the wheel guard reach them through the window)
        self.device_combo, self.backend_combo, self.motion_combo = (set_box.device_combo, set_box.backend_combo,
                                                                    set_box.motion_combo)
        self.fps_spin, self.resolution_combo, self.budget_spin = set_box.fps_spin, set_box.resolution_combo, \
            set_box.budget_spin
        self.window_spin, self.steps_spin, self.cfg_spin = set_box.window_spin, set_box.steps_spin, set_box.cfg_spin
        self.expr_spin, self.head_spin = set_box.expr_spin, set_box.head_spin
        self.encoding_combo, self.renderer_combo = set_box.encoding_combo, set_box.renderer_combo
        self.set_box_form = set_box.form

        right = QWidget()
        r = QVBoxLayout(right)
        r.addWidget(in_box)
        r.addWidget(out_box)
        r.addWidget(set_box)
        self.look_panel = LookPanel()  # app/look_panel.py
        r.addWidget(self.look_panel)
        r.addStretch(1)
        # the settings column scrolls instead of setting the window's minimum height (it needs ~800 px: taller
        # than a 1366x768 laptop's usable screen, so the window was cut off at the bottom there)
        self.right_scroll = VerticalScroll(right)

        split = QSplitter()
        split.addWidget(lib_box)
        split.addWidget(centre)
        split.addWidget(self.right_scroll)
        split.setStretchFactor(1, 1)
        split.setSizes([260, 560, 340])
        self.setCentralWidget(split)
        # a wheel turned over a drop-down or a number while scrolling the column changed it unnoticed (Camera size
        # 512 -> 256): such controls take the wheel only once clicked or tabbed to; otherwise the column scrolls
        self.wheel_guard = WheelGuard(self)
        for control in (*self.findChildren(QComboBox), *self.findChildren(QAbstractSpinBox),
                        *self.findChildren(QSlider)):
            self.wheel_guard.protect(control)

        self.status_label = QLabel("stopped")
        self.statusBar().addPermanentWidget(self.status_label)

        # actions + menus
        self.start_action = QAction(icon("start"), "Start", self, shortcut=QKeySequence("F5"))
        self.mute_action = QAction(icon("mute"), "Mute avatar", self, shortcut=QKeySequence("Ctrl+M"),
                                   checkable=True)
        self.next_action = QAction("Next portrait", self, shortcut=QKeySequence("Ctrl+Right"))
        self.prev_action = QAction("Previous portrait", self, shortcut=QKeySequence("Ctrl+Left"))
        self.add_action = QAction(icon("add"), "Add portraits…", self, shortcut=QKeySequence("Ctrl+O"))
        self.import_weights_action = QAction("Download or import weights…", self)
        self.quit_action = QAction("Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        self.help_action = QAction("Keyboard shortcuts", self, shortcut=QKeySequence("F1"))
        for a in (self.start_action, self.mute_action, self.next_action, self.prev_action, self.add_action,
                  self.help_action):
            a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            self.addAction(a)
        menu = self.menuBar().addMenu("&File")
        menu.addAction(self.add_action)
        menu.addAction(self.import_weights_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        menu = self.menuBar().addMenu("&Avatar")
        for a in (self.start_action, self.mute_action, self.next_action, self.prev_action):
            menu.addAction(a)
        menu = self.menuBar().addMenu("&Help")
        menu.addAction(self.help_action)

        qss = RESOURCES / "styles" / "headcast.qss"
        if qss.is_file():
            self.setStyleSheet(qss.read_text(encoding="utf-8"))

    def _connect(self) -> None:
        self.portrait_list.files_dropped.connect(self.add_paths)
        self.portrait_list.currentRowChanged.connect(self._portrait_selected)
        self.face_combo.activated.connect(self.choose_face)
        self.add_button.clicked.connect(self._add_dialog)
        self.add_action.triggered.connect(self._add_dialog)
        self.remove_button.clicked.connect(self._remove_current)
        self.start_button.clicked.connect(self.toggle_running)
        self.start_action.triggered.connect(self.toggle_running)
        self.mute_button.toggled.connect(self.set_muted)
        self.mute_action.toggled.connect(self.set_muted)
        self.next_action.triggered.connect(lambda: self.step_portrait(1))
        self.prev_action.triggered.connect(lambda: self.step_portrait(-1))
        self.help_action.triggered.connect(self.show_shortcuts)
        self.quit_action.triggered.connect(self.close)
        self.import_weights_action.triggered.connect(self.show_weights_dialog)
        self.refresh_inputs_button.clicked.connect(self.refresh_devices)
        self.input_combo.activated.connect(self._input_activated)
        self.camera_check.toggled.connect(self._camera_toggled)
        self.audio_out_check.toggled.connect(self._audio_out_changed)
        self.audio_out_combo.activated.connect(lambda _i: self._audio_out_changed())
        self.delay_spin.valueChanged.connect(self._delay_changed)
        self.settings_panel.changed.connect(self._settings_changed)
        self.bridge.state_changed.connect(self._state_changed)
        self.bridge.frame_ready.connect(self._show_frame)
        self.bridge.error.connect(self._engine_error)
        self.bridge.message.connect(self._bridge_message)
        self.bridge.camera_changed.connect(self._camera_state)
        self.bridge.renderer_changed.connect(self._renderer_state)
        self.bridge.atlas_progress.connect(self._atlas_progress)
        self.loop_check.toggled.connect(self._loop_toggled)
        self.look_panel.look_changed.connect(self._look_changed)

    def _restore(self) -> None:
        self._restoring = True
        try:
            self._restore_widgets()
        finally:
            self._restoring = False

    def _restore_widgets(self) -> None:
        s = self.settings
        self.settings_panel.restore(s)
        self.loop_check.setChecked(s.loop_audio_file)
        self.delay_spin.setValue(s.audio_delay_ms)
        self.camera_check.setChecked(s.camera_enabled)
        self._camera_state(self.bridge.camera_description() if s.camera_enabled else "off")
        self.portrait_list.set_portraits(self.library.portraits)
        if s.last_portrait is not None:
            i = self.library.index_of(s.last_portrait)
            if i >= 0:
                self.portrait_list.setCurrentRow(i)
        if self.portrait_list.currentRow() < 0 and len(self.library):
            self.portrait_list.setCurrentRow(0)
        self.refresh_devices()
        self.audio_out_check.setChecked(s.audio_output_enabled)
        self._update_start()
        self.check_camera()

    # ---- messages -----------------------------------------------------------------------------------
    @Slot(str)
    def show_message(self, text: str, warning: bool = False, key: str | None = None) -> None:
        """Non-modal: added to the message list above the preview (every message stays visible until dismissed)
        and flashed in the status bar; kept in `messages` for the log. `key`: a message of this kind is shown
        once per session (e.g. the camera warning, which every Start would otherwise repeat)."""
        (log.warning if warning else log.info)(text)
        if key is not None:
            if key in self._message_keys:
                return
            self._message_keys.add(key)
        self.messages.append(text)
        self.message_panel.add(text, warning)
        self.statusBar().showMessage(text.splitlines()[0], 10000)

    def _bridge_message(self, text: str) -> None:
        key = "camera-unavailable" if text.startswith("Virtual camera unavailable") else None
        self.show_message(text, warning=True, key=key)

    def show_shortcuts(self) -> None:
        # a table, not space-padded text: padding only lines up in a monospace font, and the dialog's is not
        rows = "".join(f"<tr><td style='padding-right:16px'><b>{k}</b></td><td>{what}</td></tr>"
                       for what, k in SHORTCUTS)
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", f"<table>{rows}</table>",
                          parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        self.shortcuts_box = box
        box.open()

    # ---- portraits ----------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    def _add_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add portraits", str(Path.home()),
                                                f"Images ({' '.join('*' + s for s in IMAGE_SUFFIXES)})")
        if files:
            self.add_paths([Path(f) for f in files])

    @Slot(list)
    def add_paths(self, paths: list[Path]) -> None:
        """Analyse dropped files/folders in the background; each result lands via `_portrait_added`."""
        files, skipped = collect_image_files([Path(p) for p in paths])
        for s in skipped:
            self.show_message(f"Skipped {s}", warning=True)
        if not files:
            if not skipped:
                self.show_message(f"No {IMAGE_KINDS} images in what was dropped.", warning=True)
            return
        self.statusBar().showMessage(f"Finding faces in {len(files)} image(s)…")
        for f in files:
            self._adding += 1
            self.tasks.spawn(self._add_portrait(f))

    async def _add_portrait(self, path: Path) -> None:
        try:
            portrait = await self.tasks.run(self._analyse, path)
        except Exception as exc:
            self._portrait_rejected(exc)
        else:
            self._portrait_added(portrait)

    def _analyse(self, path: Path):
        """Worker thread: the shared cropper is created on first use (under a lock)."""
        return analyse_portrait(path, self.bridge.get_cropper(), self.library.folder)

    def _portrait_added(self, portrait) -> None:
        """Stopped: the new portrait becomes the current one. Live: it joins the library only; what the call sees
        changes when the user picks it (click, Ctrl+Left/Right), never because a photo finished loading."""
        self._adding -= 1
        i = self.library.add(portrait)
        self.portrait_list.set_portraits(self.library.portraits)
        if self.bridge.state in ("running", "starting"):
            self.statusBar().showMessage(f"Added {portrait.name} to the library; click it (or press "
                                         "Ctrl+Right) to switch the call to it", 8000)
        else:
            self.portrait_list.setCurrentRow(i)
            self._portrait_selected(i)
            self.statusBar().showMessage(f"Added {portrait.name}", 5000)
        if portrait.faces > 1:  # never a silent choice
            self.show_message(f"{portrait.name} has {portrait.faces} faces; animating face {portrait.face + 1} "
                              f"(faces are numbered {FACE_ORDER}). Pick another under “Detected face”.")

    def choose_face(self, index: int) -> None:
        """Crop face `index` (FACE_ORDER) of the current portrait in the background, then use it."""
        p = self.current_portrait()
        if p is None or index == p.face or not 0 <= index < p.faces:
            return
        self.face_combo.setEnabled(False)
        self.tasks.spawn(self._crop_face(Path(p.path), index))

    async def _crop_face(self, path: Path, index: int) -> None:
        try:
            portrait = await self.tasks.run(analyse_portrait, path, self.bridge.get_cropper(), self.library.folder,
                                            index)
        except Exception as exc:
            self.face_combo.setEnabled(True)
            self.show_message(f"Could not use face {index + 1}: {exc}", warning=True)
            self._portrait_selected(self.portrait_list.currentRow())
            return
        self.face_combo.setEnabled(True)
        i = self.library.add(portrait)
        self._portrait_selected(i)
        if self.bridge.running:
            self.bridge.set_portrait(portrait.path, portrait.face)

    def _portrait_rejected(self, exc: BaseException) -> None:
        self._adding -= 1
        if isinstance(exc, PortraitError):
            self.show_message(f"Not added: {exc}", warning=True)
        else:
            self.show_message(f"Could not add a portrait: {type(exc).__name__}: {exc}", warning=True)

    def _remove_current(self) -> None:
        i = self.portrait_list.currentRow()
        if i >= 0:
            self.library.remove(i)
            self.portrait_list.set_portraits(self.library.portraits)
            self.portrait_list.setCurrentRow(min(i, len(self.library) - 1))
            if not len(self.library):
                self._portrait_selected(-1)

    def current_portrait(self):
        i = self.portrait_list.currentRow()
        return self.library[i] if 0 <= i < len(self.library) else None

    @Slot(int)
    def _portrait_selected(self, row: int) -> None:
        p = self.library[row] if 0 <= row < len(self.library) else None
        self._update_start()
        self.library_panel.show_portrait(p)
        if p is None:
            return
        self.look_panel.set_look(self.library.look_of(row))  # each portrait remembers its look
        self.bridge.set_look(self.look_panel.look())
        changed = self.settings.last_portrait != p.path
        self.settings.last_portrait = p.path
        if changed:
            self._save()  # now, not at close: after a crash or a kill the app comes back on this portrait
        if self.bridge.running and changed:
            self.bridge.set_portrait(p.path, p.face)

    def _look_changed(self, look) -> None:
        """A slider moved: remember it for this portrait; live it eases in, stopped a still preview shows it."""
        note = look.lite_note() if self.settings.renderer != "full" else None
        self.look_panel.set_note(f"If lite mode runs: {note}." if note else "")
        i = self.portrait_list.currentRow()
        p = self.current_portrait()
        if p is None:
            self.bridge.set_look(look)
            return
        try:
            self.library.set_look(i, look)
        except OSError as exc:
            self.statusBar().showMessage(f"Could not save the look: {exc}", 10000)
        self.bridge.set_look(look, dataclasses.replace(self.settings), p.path, p.face)

    def step_portrait(self, step: int) -> None:
        n = len(self.library)
        if n:
            self.portrait_list.setCurrentRow((max(self.portrait_list.currentRow(), 0) + step) % n)

    # ---- audio devices ------------------------------------------------------------------------------
    def refresh_devices(self) -> None:
        if not self.input_panel.fill(audio_io.input_devices(), audio_io.has_default_input(),
                                     self.settings.microphone):
            self.show_message(NO_MICROPHONE, warning=True, key="no-microphone")
        self.outputs_panel.fill(audio_io.output_devices(), self.settings.audio_output_device)
        self._open_monitor()

    def select_input(self, choice: InputChoice) -> None:
        """Pick an input programmatically (tests, restore); file inputs carry their path in `value`."""
        self.input_panel.select(choice)
        self._input_changed()

    def current_input(self) -> InputChoice:
        return self.input_combo.currentData()

    def _input_activated(self, index: int) -> None:
        choice = self.input_combo.itemData(index)
        if choice.kind == "file" and choice.value is None:
            path, _ = QFileDialog.getOpenFileName(self, "Audio file", str(Path.home()),
                                                  "Audio (*.wav *.mp3 *.flac *.ogg *.m4a)")
            if not path:
                self.input_combo.setCurrentIndex(0)
            else:
                self.select_input(InputChoice("file", path))
                return
        self._input_changed()

    def _input_changed(self) -> None:
        choice = self.current_input()
        if choice is not None and choice.kind == "mic":
            self.settings.microphone = choice.value
        self._open_monitor()
        self._save()

    def _open_monitor(self) -> None:
        if self.voice.open_monitor(self.current_input()):
            self._audio_out_changed()

    def _close_audio(self) -> None:
        self.voice.close()

    @property
    def monitor(self) -> audio_io.InputMonitor | None:
        return self.voice.monitor

    @property
    def audio_out(self) -> audio_io.DelayedAudioOutput | None:
        return self.voice.audio_out

    def _audio_out_changed(self) -> None:
        self.settings.audio_output_enabled = self.audio_out_check.isChecked()
        self.settings.audio_output_device = self.audio_out_combo.currentData()
        self.outputs_panel.update_delay_enabled()
        self.voice.open_output()
        self._save()

    def _loop_toggled(self, on: bool) -> None:
        self.settings.loop_audio_file = on
        self._save()

    def _delay_changed(self, value: float) -> None:
        self.settings.audio_delay_ms = AUTO_DELAY if value < 0 else float(value)
        self.voice.delay_changed()
        self._save()

    def _update_meter(self) -> None:
        self.voice.tick()

    # ---- settings -----------------------------------------------------------------------------------
    def _settings_changed(self) -> None:
        if self._restoring:
            return
        s = self.settings
        self.settings_panel.read_into(s)
        if self.bridge.running:
            self.bridge.configure(dataclasses.replace(s))
        self._save()

    def _save(self) -> None:
        if self._restoring:
            return
        try:
            save_settings(self.settings)
        except OSError as exc:
            self.statusBar().showMessage(f"Could not save settings: {exc}", 10000)

    # ---- engine -------------------------------------------------------------------------------------
    @Slot()
    def toggle_running(self) -> None:
        if self.bridge.state in ("running", "starting"):
            self.bridge.stop()
        elif self.bridge.state == "stopped":
            self.start()

    def start(self) -> None:
        p = self.current_portrait()
        if p is None:
            self.show_message(NEEDS_PORTRAIT, warning=True)
            return
        choice = self.current_input()
        if choice.kind == "file" and not choice.value:
            self.show_message("Choose an audio file first.", warning=True)
            return
        if choice.kind == NO_INPUT:
            self.show_message(NO_MICROPHONE, warning=True)
            return
        self.preview.set_placeholder("Starting…")
        self.bridge.start(dataclasses.replace(self.settings), p.path, choice,
                          camera=self.camera_check.isChecked(), muted=self.mute_action.isChecked(), face=p.face)

    @Slot(bool)
    def set_muted(self, muted: bool) -> None:
        for w in (self.mute_action, self.mute_button):
            if w.isChecked() != muted:
                w.blockSignals(True)
                w.setChecked(muted)
                w.blockSignals(False)
        self.bridge.set_muted(muted)
        text = "Avatar muted (idle motion)" if muted else "Avatar follows the voice"
        self.statusBar().showMessage(text, 3000)

    def _camera_toggled(self, on: bool) -> None:
        self.settings.camera_enabled = on
        self.bridge.set_camera(on)
        if not on:
            self._camera_state("off")
        elif not self.bridge.running:
            self._camera_state(self.bridge.camera_description())
        self._save()

    def check_camera(self) -> None:
        """Probe the virtual camera in the background; the label names the backend or what to install."""
        self.camera_available = None
        self.tasks.spawn(self._probe_camera())

    async def _probe_camera(self) -> None:
        from .engine_bridge import probe_camera

        ok, text = await self.tasks.run(probe_camera)
        self.camera_available = ok
        self._camera_probe_label = f"Ready — {text}" if ok else text.splitlines()[0]
        if self.camera_check.isChecked() and not self.bridge.running:
            self._camera_state(self._camera_probe_label)
        self.camera_label.setToolTip(text)  # the full hint with the commands
        if not ok and self.camera_check.isChecked():
            what_to_do = text.split("\n(")[0]  # the backend's own error stays in the label's tooltip and the log
            log.info("virtual camera probe: %s", text)
            self.show_message(f"Virtual camera unavailable; the preview still works. {what_to_do}",
                              warning=True, key="camera-unavailable")

    @Slot(str)
    def _camera_state(self, text: str) -> None:
        if text == "idle":  # a run ended: back to what the probe found
            text = self._camera_probe_label or "idle"
        self.camera_label.setText(text)
        if text not in ("off", "idle"):
            self.camera_label.setToolTip(text)

    @Slot(str)
    def _state_changed(self, state: str) -> None:
        running = state in ("running", "starting")
        self.start_button.setText({"starting": "Starting…", "running": "Stop", "stopping": "Stopping…"}
                                  .get(state, "Start"))
        self.start_button.setIcon(icon("stop" if running else "start"))
        self.start_action.setText("Stop" if running else "Start")
        if state in ("starting", "stopping"):  # not "stopped" next to a Starting… button
            self.status_label.setText(f"{state}…")
        if state == "stopped":
            self.status_label.setText("stopped")
            self.preview.clear()  # a frozen last frame under "stopped" looks live; the placeholder says it is not
            self.preview.set_placeholder("Stopped. Press Start (F5).")
        self._update_start()

    def _update_start(self) -> None:
        """Start works only with a portrait: without one the button and F5 are off and say what to do first
        (a Start that can only answer with an error message is a control that cannot work)."""
        state = self.bridge.state
        ready = self.current_portrait() is not None
        enabled = state in ("running", "starting") or (state == "stopped" and ready)
        self.start_button.setEnabled(enabled)
        self.start_action.setEnabled(enabled)
        self.start_button.setToolTip("" if ready or state != "stopped" else NEEDS_PORTRAIT)
        if state == "stopped" and self.preview.frames_shown == 0:
            self.preview.set_placeholder("Press Start (F5) to go live." if ready else NEEDS_PORTRAIT)

    @Slot(str)
    def _renderer_state(self, reason: str) -> None:
        """Which renderer runs and why (e.g. 'lite mode: the full renderer measured 0.13 fps ...')."""
        self.preview_panel.show_renderer(reason)

    @Slot(int, int)
    def _atlas_progress(self, done: int, total: int) -> None:
        """A lite-mode atlas is being built with the full renderer (once per portrait): show how far."""
        self.preview_panel.show_atlas(done, total)

    @Slot()
    def _show_frame(self) -> None:
        frame = self.bridge.take_frame()
        if frame is not None:
            self.preview.show_frame(frame)

    @Slot(str)
    def _engine_error(self, text: str) -> None:
        self.show_message(text, warning=True)

    def _update_stats(self) -> None:
        st = self.bridge.stats()
        if st is None:
            return
        self.status_label.setText(status_text(st))
        self.status_label.setToolTip(f"{st.get('state', '')}\n\n{STATUS_HELP}".strip())

    # ---- weights ------------------------------------------------------------------------------------
    def show_weights_dialog(self) -> None:
        from .first_run import WeightsDialog

        try:
            dialog = WeightsDialog(self)
        except Exception as exc:
            self.show_message(f"The weights registry is unavailable: {exc}", warning=True)
            return
        dialog.open()

    def first_run_check(self) -> None:
        """Real weights missing: open the download/import dialog (never with synthetic weights)."""
        if self.synthetic:
            return
        from .first_run import missing_weights, weights_registry

        try:
            missing = missing_weights(weights_registry())
        except Exception as exc:
            self.show_message(f"Cannot check the model weights: {exc}", warning=True)
            return
        if missing:
            self.show_weights_dialog()

    # ---- shutdown -----------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self._meter_timer.stop()
        self._stats_timer.stop()
        self.bridge.shutdown()
        self._close_audio()
        self._save()
        self.tasks.shutdown()
        super().closeEvent(event)


def excepthook_to_window(window: MainWindow) -> None:
    """Unexpected exceptions in slots become messages instead of silent stderr noise."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        try:
            window.show_message(f"Unexpected error: {kind.__name__}: {value}", warning=True)
        except Exception:
            pass

    sys.excepthook = hook
