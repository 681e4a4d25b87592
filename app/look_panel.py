"""The "Look" panel: LivePortrait's editor sliders (core/look.py) with units, a reset per control, reset all,
the presets (built-in and saved), and a gaze-lock switch.

Why a panel of its own: the window wires one signal (`look_changed`) to the bridge, which previews a still frame
when stopped and eases the look in when live; the panel itself never renders and never blocks. Sliders are
integers over the official range at the official step, so the values are exactly the editor's.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.look import ALL_CONTROLS, Control, Look, LookError
from core.look_presets import PresetStore

CUSTOM = "Custom"  # the preset box's entry when the sliders match no preset


def _text(control: Control, value: float | None) -> str:
    if value is None:
        return "own"
    digits = 0 if control.step >= 1 else (1 if control.step >= 0.1 else 2)
    return f"{value:.{digits}f}{' ' + control.unit if control.unit and control.unit != 'kp' else ''}"


class ControlRow:
    """One slider with its value label and reset button."""

    def __init__(self, control: Control, changed) -> None:
        self.control = control
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, round((control.maximum - control.minimum) / control.step))
        self.slider.setAccessibleName(control.label)
        self.slider.setToolTip(f"{control.label}: {control.minimum:g} .. {control.maximum:g} "
                               f"({control.name}; LivePortrait: {control.official})")
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(58)
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.reset_button = QToolButton(text="↺")
        self.reset_button.setToolTip(f"Reset {control.label.lower()}")
        self.reset_button.setAccessibleName(f"Reset {control.label}")
        self.value: float | None = None if control.optional else control.neutral
        self.slider.valueChanged.connect(lambda pos: changed(self, self.from_position(pos)))
        self.reset_button.clicked.connect(lambda: changed(self, self.neutral))

    @property
    def neutral(self) -> float | None:
        return None if self.control.optional else self.control.neutral

    def from_position(self, pos: int) -> float:
        c = self.control
        return round(c.minimum + pos * c.step, 6)

    def show(self, value: float | None) -> None:
        """Move the slider to `value` without emitting."""
        self.value = value
        c = self.control
        shown = c.neutral if value is None else value
        self.slider.blockSignals(True)
        self.slider.setValue(round((shown - c.minimum) / c.step))
        self.slider.blockSignals(False)
        self.value_label.setText(_text(c, value))
        self.reset_button.setEnabled(value != self.neutral)


class LookPanel(QGroupBox):
    """Sliders for every look control; emits `look_changed(Look)` on every user change (not on `set_look`)."""

    look_changed = Signal(object)

    def __init__(self, store: PresetStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Look", parent)
        self.store = store or PresetStore()
        self._look = Look()
        self.rows: dict[str, ControlRow] = {}
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.preset_combo = QComboBox()
        self.preset_combo.setAccessibleName("Look preset")
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Keep these settings as a named look")
        self.reset_all_button = QPushButton("Reset all")
        top.addWidget(self.preset_combo, 1)
        top.addWidget(self.save_button)
        top.addWidget(self.reset_all_button)
        layout.addLayout(top)
        self.gaze_lock_check = QCheckBox("Gaze lock (eyes on the camera)")
        layout.addWidget(self.gaze_lock_check)
        grid = QGridLayout()
        for i, control in enumerate(c for c in ALL_CONTROLS if c.name != "gaze_lock"):
            row = self.rows[control.name] = ControlRow(control, self._row_changed)
            grid.addWidget(QLabel(control.label), i, 0)
            grid.addWidget(row.slider, i, 1)
            grid.addWidget(row.value_label, i, 2)
            grid.addWidget(row.reset_button, i, 3)
        layout.addLayout(grid)
        self.note_label = QLabel()
        self.note_label.setWordWrap(True)
        self.note_label.setObjectName("lookNote")
        layout.addWidget(self.note_label)
        self.set_note("")
        self._fill_presets()
        self.preset_combo.activated.connect(lambda _i: self.apply_preset(self.preset_combo.currentText()))
        self.save_button.clicked.connect(self._save_dialog)
        self.reset_all_button.clicked.connect(lambda: self._set(Look(), emit=True))
        self.gaze_lock_check.toggled.connect(lambda on: self._set(self._look.with_value("gaze_lock", float(on)),
                                                                  emit=True))
        self._show()

    # ---- state ----------------------------------------------------------------------------------------
    def look(self) -> Look:
        return self._look

    def set_look(self, look: Look) -> None:
        """Show `look` (a portrait was selected) without emitting `look_changed`."""
        self._set(look, emit=False)

    def set_value(self, name: str, value: float | None) -> None:
        """As if the user moved control `name` to `value` (emits)."""
        self._set(self._look.with_value(name, value), emit=True)

    def _row_changed(self, row: ControlRow, value: float | None) -> None:
        self._set(self._look.with_value(row.control.name, value), emit=True)

    def _set(self, look: Look, emit: bool) -> None:
        changed = look != self._look
        self._look = look
        self._show()
        if emit and changed:
            self.look_changed.emit(look)

    def _show(self) -> None:
        for name, row in self.rows.items():
            row.show(getattr(self._look, name))
        self.gaze_lock_check.blockSignals(True)
        self.gaze_lock_check.setChecked(self._look.gaze_lock >= 0.5)
        self.gaze_lock_check.blockSignals(False)
        self.reset_all_button.setEnabled(not self._look.is_neutral())
        match = next((n for n in self.store.names() if self.store.get(n) == self._look), CUSTOM)
        self.preset_combo.setCurrentText(match if not self._look.is_neutral() else "Neutral")

    def set_note(self, text: str) -> None:
        """A line under the sliders (e.g. which controls lite mode cannot show)."""
        self.note_label.setText(text)
        self.note_label.setVisible(bool(text))

    # ---- presets --------------------------------------------------------------------------------------
    def _fill_presets(self) -> None:
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        self.preset_combo.addItems(["Neutral", *self.store.names(), CUSTOM])
        self.preset_combo.blockSignals(False)

    def apply_preset(self, name: str) -> None:
        if name == CUSTOM:
            self._show()
            return
        self._set(Look() if name == "Neutral" else self.store.get(name), emit=True)

    def save_preset(self, name: str) -> str | None:
        """Keep the current look as preset `name`; returns the problem (one sentence) or None."""
        try:
            self.store.save(name, self._look)
        except (LookError, OSError) as exc:
            return f"Could not save the look: {exc}"
        self._fill_presets()
        self._show()
        return None

    def _save_dialog(self) -> None:
        name, ok = QInputDialog.getText(self, "Save look", "Name for this look:")
        if ok and name.strip():
            problem = self.save_preset(name)
            if problem:
                self.set_note(problem)
