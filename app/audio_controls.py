"""The audio choices of the Input and Outputs groups: which input feeds the avatar (microphone, file, test
signal), looping a file, and the delayed voice's switch, device and delay. A choice is written into the settings
and saved; the streams it opens (level monitor, delayed voice) belong to `Voice` (app/voice.py), the devices are
listed by `audio_io`. Testable alone with an `InputPanel`, an `OutputsPanel` and settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from core.live_input import InputChoice

from . import audio_io
from .engine_bridge import NO_MICROPHONE
from .io_panels import InputPanel, OutputsPanel
from .settings import AUTO_DELAY, AppSettings
from .voice import Voice


class AudioControls:
    """Owns the wiring of the input and output controls to `voice` and the settings. `say` shows a message,
    `save` persists the settings."""

    def __init__(self, parent: QWidget, inputs: InputPanel, outputs: OutputsPanel, voice: Voice,
                 settings: AppSettings, say: Callable[..., None], save: Callable[[], None]) -> None:
        self.parent, self.inputs, self.outputs, self.voice = parent, inputs, outputs, voice
        self.settings, self.say, self.save = settings, say, save
        inputs.refresh_inputs_button.clicked.connect(self.refresh_devices)
        inputs.input_combo.activated.connect(self._input_activated)
        inputs.loop_check.toggled.connect(self._loop_toggled)
        outputs.audio_out_check.toggled.connect(self._output_changed)
        outputs.audio_out_combo.activated.connect(lambda _i: self._output_changed())
        outputs.delay_spin.valueChanged.connect(self._delay_changed)

    def restore_file_options(self) -> None:
        """The file-loop switch and the voice delay as saved (before the devices are listed)."""
        self.inputs.loop_check.setChecked(self.settings.loop_audio_file)
        self.outputs.delay_spin.setValue(self.settings.audio_delay_ms)

    def restore_output(self) -> None:
        """The delayed voice's switch as saved (after the devices are listed)."""
        self.outputs.audio_out_check.setChecked(self.settings.audio_output_enabled)

    def refresh_devices(self) -> None:
        if not self.inputs.fill(audio_io.input_devices(), audio_io.has_default_input(), self.settings.microphone):
            self.say(NO_MICROPHONE, warning=True, key="no-microphone")
        self.outputs.fill(audio_io.output_devices(), self.settings.audio_output_device)
        self._open_monitor()

    def select_input(self, choice: InputChoice) -> None:
        """Pick an input programmatically (tests, restore); file inputs carry their path in `value`."""
        self.inputs.select(choice)
        self._input_changed()

    def current_input(self) -> InputChoice:
        return self.inputs.input_combo.currentData()

    def _input_activated(self, index: int) -> None:
        combo = self.inputs.input_combo
        choice = combo.itemData(index)
        if choice.kind == "file" and choice.value is None:
            path, _ = QFileDialog.getOpenFileName(self.parent, "Audio file", str(Path.home()),
                                                  "Audio (*.wav *.mp3 *.flac *.ogg *.m4a)")
            if not path:
                combo.setCurrentIndex(0)
            else:
                self.select_input(InputChoice("file", path))
                return
        self._input_changed()

    def _input_changed(self) -> None:
        choice = self.current_input()
        if choice is not None and choice.kind == "mic":
            self.settings.microphone = choice.value
        self._open_monitor()
        self.save()

    def _open_monitor(self) -> None:
        if self.voice.open_monitor(self.current_input()):
            self._output_changed()

    def _output_changed(self) -> None:
        self.settings.audio_output_enabled = self.outputs.audio_out_check.isChecked()
        self.settings.audio_output_device = self.outputs.audio_out_combo.currentData()
        self.outputs.update_delay_enabled()
        self.voice.open_output()
        self.save()

    def _loop_toggled(self, on: bool) -> None:
        self.settings.loop_audio_file = on
        self.save()

    def _delay_changed(self, value: float) -> None:
        self.settings.audio_delay_ms = AUTO_DELAY if value < 0 else float(value)
        self.voice.delay_changed()
        self.save()
