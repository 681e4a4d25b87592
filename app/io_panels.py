"""The window's "Input" and "Outputs" groups: which audio feeds the avatar (with its level), and where the
result goes (virtual camera, the delayed voice). They list devices and show states; opening streams and what a
choice does stay with the window. Testable alone: build them and fill them with device lists."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
)

from core.live_input import InputChoice

from .widgets import LevelMeter

NO_INPUT = "none"  # the input list's placeholder kind when the computer has no microphone at all


def _narrow(combo: QComboBox) -> None:
    """Long device names must not widen the settings column past a laptop screen (the list still shows them)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(14)


class InputPanel(QGroupBox):
    def __init__(self, refresh_icon, parent=None) -> None:
        super().__init__("Input", parent)
        self.input_combo = QComboBox()
        self.input_combo.setAccessibleName("Audio input")
        _narrow(self.input_combo)
        self.refresh_inputs_button = QPushButton(refresh_icon, "")
        self.refresh_inputs_button.setToolTip("Rescan audio devices")
        self.refresh_inputs_button.setAccessibleName("Rescan audio devices")
        self.level_meter = LevelMeter()
        self.loop_check = QCheckBox("Loop audio files")
        self.loop_check.setToolTip("An audio-file input starts again at its end instead of stopping")
        f = QFormLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.input_combo, 1)
        row.addWidget(self.refresh_inputs_button)
        f.addRow("Source", row)  # a microphone, an audio file or the test signal
        f.addRow("Level", self.level_meter)
        f.addRow(self.loop_check)

    def fill(self, devices, has_default: bool, wanted: str | None) -> bool:
        """List the microphones (`audio_io` devices: label, name), a file and the test signal; select `wanted`.
        Returns False when the computer has no microphone at all."""
        combo = self.input_combo
        combo.blockSignals(True)
        combo.clear()
        if has_default:  # offered only when PortAudio has one: otherwise Start fails with "device -1"
            combo.addItem("System default microphone", InputChoice("mic", None))
        for d in devices:
            combo.addItem(d.label, InputChoice("mic", d.name))
        any_mic = bool(devices) or has_default
        if not any_mic:
            combo.addItem("No microphone found", InputChoice(NO_INPUT))
        combo.addItem("Audio file…", InputChoice("file", None))
        combo.addItem("Test signal (generator)", InputChoice("generator", None))
        combo.setCurrentIndex(max(self.find(InputChoice("mic", wanted)), 0))
        combo.blockSignals(False)
        return any_mic

    def find(self, choice: InputChoice) -> int:
        for i in range(self.input_combo.count()):
            c = self.input_combo.itemData(i)
            if c.kind == choice.kind and c.value == choice.value:
                return i
        return -1

    def select(self, choice: InputChoice) -> None:
        """Select `choice`, adding it first when it is not listed (a file carries its path in `value`)."""
        i = self.find(choice)
        if i < 0:
            label = {"file": f"File: {Path(choice.value).name}" if choice.value else "Audio file…",
                     "generator": "Test signal (generator)"}.get(choice.kind, str(choice.value))
            self.input_combo.addItem(label, choice)
            i = self.input_combo.count() - 1
        self.input_combo.setCurrentIndex(i)


class OutputsPanel(QGroupBox):
    def __init__(self, parent=None) -> None:
        super().__init__("Outputs", parent)
        self.camera_check = QCheckBox("Virtual camera")
        self.camera_label = QLabel("off")
        self.camera_label.setWordWrap(True)
        self.camera_label.setObjectName("cameraLabel")
        self.audio_out_check = QCheckBox("Delayed voice to")
        self.audio_out_combo = QComboBox()
        self.audio_out_combo.setAccessibleName("Delayed audio output device")
        _narrow(self.audio_out_combo)
        self.delay_spin = QDoubleSpinBox(minimum=-1, maximum=5000, singleStep=10, decimals=0, suffix=" ms")
        self.delay_spin.setSpecialValueText("auto (match the avatar)")
        self.delay_spin.setToolTip("How much later your voice plays on the chosen output, so it lines up with the "
                                   "avatar's mouth; auto uses the measured delay")
        self.delay_label = QLabel("")
        f = QFormLayout(self)
        f.addRow(self.camera_check)
        f.addRow(self.camera_label)
        f.addRow(self.audio_out_check, self.audio_out_combo)
        f.addRow("Voice delay", self.delay_spin)
        f.addRow(self.delay_label)

    def fill(self, devices, wanted: str | None) -> None:
        """List the output devices for the delayed voice; with none, the option is off and says why."""
        self.audio_out_combo.clear()
        for d in devices:
            self.audio_out_combo.addItem(d.label, d.name)
        j = self.audio_out_combo.findData(wanted)
        if j >= 0:
            self.audio_out_combo.setCurrentIndex(j)
        has_output = self.audio_out_combo.count() > 0  # nothing to play the delayed voice on: say so, do not offer
        self.audio_out_check.setEnabled(has_output)
        self.audio_out_check.setToolTip("Plays your voice, delayed to match the avatar's mouth, on this output"
                                        if has_output else "No audio output device found; plug one in and rescan")
        self.update_delay_enabled()

    def update_delay_enabled(self) -> None:
        """The output list and the delay only matter while the delayed voice is on."""
        on = self.audio_out_check.isEnabled() and self.audio_out_check.isChecked()
        self.audio_out_combo.setEnabled(on)
        self.delay_spin.setEnabled(on)
