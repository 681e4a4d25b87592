"""The window's "Settings" group: renderer, camera size, frame rate, device, motion source and its controls,
latency budget. It shows `AppSettings` and writes them back; the window decides what a change does (save,
reconfigure a running engine). Testable alone: build it, `restore(settings)`, change a control, `read_into`."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QSpinBox

from core.timebase import FPS

from .settings import BACKENDS, MOTION_SOURCES, RENDERER_CHOICES, AppSettings

RESOLUTIONS = ((256, 256), (512, 512), (640, 480), (720, 720), (1280, 720))  # by picture size, smallest first
DEVICES = ("auto", "cpu", "cuda", "mps")


class SettingsPanel(QGroupBox):
    """`changed` fires on any user edit (not during `restore`)."""

    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("Settings", parent)
        self._restoring = False
        self._make_controls()
        self._explain()
        f = self.form = QFormLayout(self)
        # the choices a user makes most often first, so they show without scrolling on a 720 px screen; the motion
        # model's fine controls last
        for label, control in (
                ("Renderer", self.renderer_combo), ("Camera size", self.resolution_combo),
                ("Frame rate", self.fps_spin), ("Compute device", self.device_combo), ("Motion", self.motion_combo),
                ("Expression", self.expr_spin),
                ("Head motion", self.head_spin), ("Latency budget", self.budget_spin),
                ("Renderer backend", self.backend_combo), ("Motion window", self.window_spin),
                ("Sampling steps", self.steps_spin), ("Guidance (CFG)", self.cfg_spin),
                ("JoyVASA encoding", self.encoding_combo)):
            f.addRow(label, control)
        for w in (self.device_combo, self.backend_combo, self.motion_combo, self.resolution_combo,
                  self.renderer_combo, self.encoding_combo):
            w.currentIndexChanged.connect(self._edited)
        for w in (self.fps_spin, self.window_spin, self.steps_spin, self.cfg_spin, self.expr_spin, self.head_spin,
                  self.budget_spin):
            w.valueChanged.connect(self._edited)

    def _make_controls(self) -> None:
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.backend_combo = QComboBox()
        self.backend_combo.addItems(list(BACKENDS))
        self.motion_combo = QComboBox()
        self.motion_combo.addItems(list(MOTION_SOURCES))
        self.fps_spin = QSpinBox(minimum=1, maximum=60, suffix=" fps")
        self.resolution_combo = QComboBox()
        for w, h in RESOLUTIONS:
            self.resolution_combo.addItem(f"{w}×{h}", f"{w}x{h}")
        self.window_spin = QSpinBox(minimum=1, maximum=250, suffix=" frames")
        self.steps_spin = QSpinBox(minimum=1, maximum=1000)
        self.cfg_spin = QDoubleSpinBox(minimum=0, maximum=20, singleStep=0.25)
        self.expr_spin = QDoubleSpinBox(minimum=0, maximum=4, singleStep=0.1, suffix=" ×")
        self.head_spin = QDoubleSpinBox(minimum=0, maximum=4, singleStep=0.1, suffix=" ×")
        self.encoding_combo = QComboBox()  # JoyVASA's positional encoding; data None: the checkpoint's own
        for label, value in (("checkpoint's own", None), ("prefix", "prefix"), ("fixed", "fixed")):
            self.encoding_combo.addItem(label, value)
        self.renderer_combo = QComboBox()
        self.renderer_combo.addItems(sorted(RENDERER_CHOICES, key=lambda r: r != "auto"))  # the default (auto) first
        self.budget_spin = QSpinBox(minimum=0, maximum=10000, singleStep=50, suffix=" ms")
        self.budget_spin.setSpecialValueText("auto (GPU 300 ms, CPU 600 ms)")

    def _explain(self) -> None:
        """Plain-language tooltips: what each control changes for the user, and when to touch it."""
        self.backend_combo.setToolTip("Renderer backend; auto measures the candidates once and keeps the fastest")
        self.device_combo.setToolTip("Where the models run: auto picks the GPU when there is one (cuda: NVIDIA, "
                                     "mps: Apple), else the processor (cpu)")
        self.motion_combo.setToolTip("How the voice becomes head and mouth motion: retarget follows the voice "
                                     "directly (fastest); the others use a motion model (more natural, slower)")
        self.fps_spin.setToolTip("Frames per second sent to the camera")
        self.resolution_combo.setToolTip("The virtual camera's picture size")
        self.window_spin.setToolTip(f"Motion model only: how many frames of motion it makes at once (at {FPS} fps, "
                                    f"{FPS} frames = 1 second); longer is smoother but reacts later")
        self.steps_spin.setToolTip("Motion model only: more steps give finer motion but cost time per window")
        self.cfg_spin.setToolTip("Motion model only: how strongly the motion follows the voice (higher: "
                                 "livelier mouth, less natural)")
        self.expr_spin.setToolTip("Scales the facial expression and mouth movement (1 × = as generated)")
        self.head_spin.setToolTip("Scales the head movement (0 × = still head, 1 × = as generated)")
        self.encoding_combo.setToolTip("JoyVASA only: prefix for the published weights, fixed for a checkpoint "
                                       "trained with JoyVASA's code since 2025-12-09")
        self.renderer_combo.setToolTip(
            "full: LivePortrait every frame (needs a GPU for 25 fps). lite: a per-portrait atlas rendered once, then "
            "real time on any laptop; mouth, blinks and small head motion only (no large head turns or other "
            "expressions). auto: lite when the full renderer measures below 25 fps on this machine.")
        self.budget_spin.setToolTip("Latency budget: frames that would show later than this after the voice are "
                                    "skipped, so the avatar stays recent on a slow machine")

    def restore(self, s: AppSettings) -> None:
        """Show `s` (no `changed` signal)."""
        self._restoring = True
        try:
            self.device_combo.setCurrentText(s.device)
            self.backend_combo.setCurrentText(s.backend)
            self.motion_combo.setCurrentText(s.motion_source)
            self.renderer_combo.setCurrentText(s.renderer)
            self.fps_spin.setValue(s.fps)
            size = f"{s.output_width}x{s.output_height}"
            i = self.resolution_combo.findData(size)
            if i < 0:
                self.resolution_combo.addItem(size.replace("x", "×"), size)
                i = self.resolution_combo.count() - 1
            self.resolution_combo.setCurrentIndex(i)
            self.window_spin.setValue(s.motion_window)
            self.steps_spin.setValue(s.sampling_steps)
            self.cfg_spin.setValue(s.cfg_scale)
            self.expr_spin.setValue(s.expression_gain)
            self.head_spin.setValue(s.head_gain)
            self.encoding_combo.setCurrentIndex(max(0, self.encoding_combo.findData(s.joyvasa_encoding)))
            self.budget_spin.setValue(int(s.latency_budget_ms))
        finally:
            self._restoring = False
        self.update_motion_controls()

    def read_into(self, s: AppSettings) -> None:
        """Write what the controls show into `s`."""
        s.device = self.device_combo.currentText()
        s.backend = self.backend_combo.currentText()
        s.motion_source = self.motion_combo.currentText()
        s.renderer = self.renderer_combo.currentText()
        s.fps = self.fps_spin.value()
        s.output_width, s.output_height = map(int, self.resolution_combo.currentData().split("x"))
        s.motion_window = self.window_spin.value()
        s.sampling_steps = self.steps_spin.value()
        s.cfg_scale = self.cfg_spin.value()
        s.expression_gain = self.expr_spin.value()
        s.head_gain = self.head_spin.value()
        s.joyvasa_encoding = self.encoding_combo.currentData()
        s.latency_budget_ms = float(self.budget_spin.value())

    def update_motion_controls(self) -> None:
        """Window, steps and guidance steer a motion model (dit, joyvasa), the encoding JoyVASA alone: off when
        the chosen motion source ignores them, so a change that cannot do anything is not offered."""
        motion = self.motion_combo.currentText()
        for w in (self.window_spin, self.steps_spin, self.cfg_spin):
            w.setEnabled(motion != "retarget")
        self.encoding_combo.setEnabled(motion == "joyvasa")

    def _edited(self, *_args) -> None:
        self.update_motion_controls()
        if not self._restoring:
            self.changed.emit()
