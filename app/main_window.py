"""The main window: it builds the panels and wires them to their owners; it decides nothing itself.

Who owns what: the portraits (adding, faces, the current one and its look) `PortraitFlow`; the audio choices
`AudioControls` with the streams in `Voice`; face driving (Drive with, the camera list, the camera preview)
`DriveControls`; the virtual camera's probe and label `CameraStatus`; Start / Mute,
the Start button's state and the status line `RunControl`; the messages `MessageLog`; the actions and menus
`WindowActions`; the run itself `EngineBridge`. The window keeps the settings file (saved after each change,
never while restoring) and the first-run weights check.

Everything slow happens elsewhere: face detection and model loading in `TaskRunner` jobs (asyncio tasks on
the Qt loop whose blocking part runs in a thread pool), rendering in the engine's own thread (through
`EngineBridge`). The window only reacts to signals, timers and finished jobs.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from PySide6.QtCore import QTimer, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QLabel, QMainWindow, QSlider, QSplitter, QVBoxLayout, QWidget

from .audio_controls import AudioControls
from .camera_status import CameraStatus
from .drive_controls import DriveControls
from .drive_panel import DrivePanel
from .engine_bridge import EngineBridge, InputChoice
from .io_panels import InputPanel, OutputsPanel
from .library import Portrait, PortraitLibrary
from .library_panel import LibraryPanel
from .look_panel import LookPanel
from .messages import MessageLog
from .portrait_flow import PortraitFlow
from .preview_panel import PreviewPanel
from .run_control import RunControl
from .settings import AppSettings, data_dir, save_settings
from .settings_panel import SettingsPanel
from .tasks import TaskRunner
from .voice import Voice
from .widgets import VerticalScroll, WheelGuard, dropped_paths
from .window_actions import RESOURCES, WindowActions, icon, shortcuts_dialog


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings, *, synthetic: str | None = None,
                 warnings: list[str] | None = None, library_dir: Path | None = None,
                 bridge: EngineBridge | None = None):
        super().__init__()
        self.settings = settings
        self.synthetic = synthetic
        self.tasks = TaskRunner(unhandled=lambda exc: self.show_message(
            f"A background task failed: {type(exc).__name__}: {exc}", warning=True))
        self.library = PortraitLibrary(library_dir or data_dir() / "portraits")
        self.bridge = bridge or EngineBridge(self.tasks, synthetic=synthetic, parent=self)
        self._restoring = True
        self._build()
        self._make_owners()
        self._connect()
        self.setAcceptDrops(True)
        self._meter_timer = QTimer(self, interval=50, timeout=self.voice.tick)
        self._meter_timer.start()
        self._stats_timer = QTimer(self, interval=500, timeout=self.run.update_stats)
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
        self.drive_panel = DrivePanel(icon("refresh"))  # face driving (issue 25): app/drive_controls.py
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
        r.addWidget(self.drive_panel)
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

        self.actions_ = acts = WindowActions(self)
        self.start_action, self.mute_action, self.next_action, self.prev_action = (acts.start, acts.mute,
                                                                                   acts.next, acts.prev)
        self.add_action, self.import_weights_action, self.quit_action, self.help_action = (
            acts.add, acts.import_weights, acts.quit, acts.help)

        qss = RESOURCES / "styles" / "headcast.qss"
        if qss.is_file():
            self.setStyleSheet(qss.read_text(encoding="utf-8"))

    def _make_owners(self) -> None:
        """One owner per concern; each connects its own controls, the window connects the bridge (`_connect`)."""
        say, flash, bridge, s = self.show_message, self.statusBar().showMessage, self.bridge, self.settings
        self.message_log = MessageLog(self.message_panel, self.statusBar())
        self.voice = Voice(s, self.level_meter, self.delay_label, bridge.latency_ms, bridge.input_level, say)
        self.audio = AudioControls(self, self.input_panel, self.outputs_panel, self.voice, s, say, self._save)
        self.drive = DriveControls(self.drive_panel, self.tasks, s, bridge, say, self._save)
        self.camera = CameraStatus(self.camera_check, self.camera_label, self.tasks, s, lambda: bridge.running,
                                   bridge.set_camera, say, self._save)
        self.run = RunControl(bridge, self.preview_panel, self.actions_, self.status_label, s,
                              portrait=self.current_portrait, choice=self.audio.current_input,
                              camera_on=self.camera_check.isChecked, say=say, flash=flash)
        self.portraits = PortraitFlow(self, self.library_panel, self.library, self.look_panel, tasks=self.tasks,
                                      bridge=bridge, settings=s, say=say, flash=flash, save=self._save,
                                      selection_changed=self.run.update_start)

    def _connect(self) -> None:
        acts = self.actions_
        acts.add.triggered.connect(self.portraits.add_dialog)
        acts.next.triggered.connect(lambda: self.portraits.step(1))
        acts.prev.triggered.connect(lambda: self.portraits.step(-1))
        acts.help.triggered.connect(self.show_shortcuts)
        acts.quit.triggered.connect(self.close)
        acts.import_weights.triggered.connect(self.show_weights_dialog)
        self.settings_panel.changed.connect(self._settings_changed)
        # the bridge's signals: all but frame_ready come on the GUI thread; frame_ready comes from the engine
        # thread and goes to a slot of this window, so Qt queues it onto the GUI thread
        b = self.bridge
        b.state_changed.connect(self.run.show_state)
        b.state_changed.connect(self.drive.show_state)
        b.frame_ready.connect(self._show_frame)
        b.error.connect(self.message_log.warn)
        b.message.connect(self.message_log.from_session)
        b.camera_changed.connect(self.camera.show)
        b.renderer_changed.connect(self.preview_panel.show_renderer)
        b.atlas_progress.connect(self.preview_panel.show_atlas)

    def _restore(self) -> None:
        """Show the saved settings; nothing shown here is saved back (`_save` waits until it is done)."""
        self._restoring = True
        try:
            self.settings_panel.restore(self.settings)
            self.audio.restore_file_options()
            self.camera.restore()
            self.drive.restore()
            self.portraits.restore()
            self.audio.refresh_devices()
            self.audio.restore_output()
            self.run.update_start()
            self.camera.check()
        finally:
            self._restoring = False

    # ---- what the rest of the app (entry point, smoke test, screenshots, tests) asks of the window -----------
    @property
    def messages(self) -> list[str]:
        """Every message shown this session, oldest first."""
        return self.message_log.texts

    @Slot(str)
    def show_message(self, text: str, warning: bool = False, key: str | None = None) -> None:
        self.message_log.show(text, warning, key)

    def add_paths(self, paths: list[Path]) -> None:
        self.portraits.add_paths(paths)

    def current_portrait(self) -> Portrait | None:
        return self.portraits.current()

    def choose_face(self, index: int) -> None:
        self.portraits.choose_face(index)

    def select_input(self, choice: InputChoice) -> None:
        self.audio.select_input(choice)

    def current_input(self) -> InputChoice:
        return self.audio.current_input()

    def start(self) -> None:
        self.run.start()

    def show_shortcuts(self) -> None:
        self.shortcuts_box = shortcuts_dialog(self)
        self.shortcuts_box.open()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    @Slot()
    def _show_frame(self) -> None:
        frame = self.bridge.take_frame()
        if frame is not None:
            self.preview.show_frame(frame)

    # ---- settings -----------------------------------------------------------------------------------
    def _settings_changed(self) -> None:
        if self._restoring:
            return
        self.settings_panel.read_into(self.settings)
        if self.bridge.running:
            self.bridge.configure(dataclasses.replace(self.settings))
        self._save()

    def _save(self) -> None:
        if self._restoring:
            return
        try:
            save_settings(self.settings)
        except OSError as exc:
            self.statusBar().showMessage(f"Could not save settings: {exc}", 10000)

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
        self.voice.close()
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
