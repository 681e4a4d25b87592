"""Start / Stop / Mute and what the window shows of a run: the Start button and action (enabled only when a
start can work), the preview's placeholder, and the status line. The bridge's `state` is the one truth about the
run; this reads it and asks the bridge to change it, and holds no run state of its own.
Testable alone with a `PreviewPanel`, `WindowActions`, a label and a bridge."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PySide6.QtWidgets import QLabel

from core.live_input import InputChoice

from .engine_bridge import NO_MICROPHONE, EngineBridge
from .io_panels import NO_INPUT
from .library import Portrait
from .preview_panel import PreviewPanel
from .settings import AppSettings
from .status_line import STATUS_HELP, status_text
from .window_actions import WindowActions, icon

NEEDS_PORTRAIT = "Add a portrait first: drop a photo here or on the library, or press Ctrl+O."


class RunControl:
    """`portrait()` and `choice()` are the current portrait and input, `camera_on()` the camera switch; `say`
    shows a message and `flash(text, ms)` the status bar."""

    def __init__(self, bridge: EngineBridge, centre: PreviewPanel, actions: WindowActions, status_label: QLabel,
                 settings: AppSettings, *, portrait: Callable[[], Portrait | None],
                 choice: Callable[[], InputChoice], camera_on: Callable[[], bool], say: Callable[..., None],
                 flash: Callable[..., None]) -> None:
        self.bridge, self.centre, self.actions, self.status_label, self.settings = (
            bridge, centre, actions, status_label, settings)
        self.portrait, self.choice, self.camera_on, self.say, self.flash = portrait, choice, camera_on, say, flash
        centre.start_button.clicked.connect(self.toggle)
        actions.start.triggered.connect(self.toggle)
        centre.mute_button.toggled.connect(self.set_muted)
        actions.mute.toggled.connect(self.set_muted)

    def toggle(self) -> None:
        if self.bridge.state in ("running", "starting"):
            self.bridge.stop()
        elif self.bridge.state == "stopped":
            self.start()

    def start(self) -> None:
        p = self.portrait()
        if p is None:
            self.say(NEEDS_PORTRAIT, warning=True)
            return
        choice = self.choice()
        if choice.kind == "file" and not choice.value:
            self.say("Choose an audio file first.", warning=True)
            return
        if choice.kind == NO_INPUT:
            self.say(NO_MICROPHONE, warning=True)
            return
        self.centre.preview.set_placeholder("Starting…")
        self.bridge.start(dataclasses.replace(self.settings), p.path, choice, camera=self.camera_on(),
                          muted=self.actions.mute.isChecked(), face=p.face)

    def set_muted(self, muted: bool) -> None:
        for w in (self.actions.mute, self.centre.mute_button):
            if w.isChecked() != muted:
                w.blockSignals(True)
                w.setChecked(muted)
                w.blockSignals(False)
        self.bridge.set_muted(muted)
        self.flash("Avatar muted (idle motion)" if muted else "Avatar follows the voice", 3000)

    def show_state(self, state: str) -> None:
        """The bridge's state changed (stopped | starting | running | stopping; the window wires the signal)."""
        running = state in ("running", "starting")
        button = self.centre.start_button
        button.setText({"starting": "Starting…", "running": "Stop", "stopping": "Stopping…"}.get(state, "Start"))
        button.setIcon(icon("stop" if running else "start"))
        self.actions.start.setText("Stop" if running else "Start")
        if state in ("starting", "stopping"):  # not "stopped" next to a Starting… button
            self.status_label.setText(f"{state}…")
        if state == "stopped":
            self.status_label.setText("stopped")
            self.centre.preview.clear()  # a frozen last frame under "stopped" looks live; the placeholder says not
            self.centre.preview.set_placeholder("Stopped. Press Start (F5).")
        self.update_start()

    def update_start(self) -> None:
        """Start works only with a portrait: without one the button and F5 are off and say what to do first
        (a Start that can only answer with an error message is a control that cannot work)."""
        state = self.bridge.state
        ready = self.portrait() is not None
        enabled = state in ("running", "starting") or (state == "stopped" and ready)
        self.centre.start_button.setEnabled(enabled)
        self.actions.start.setEnabled(enabled)
        self.centre.start_button.setToolTip("" if ready or state != "stopped" else NEEDS_PORTRAIT)
        if state == "stopped" and self.centre.preview.frames_shown == 0:
            self.centre.preview.set_placeholder("Press Start (F5) to go live." if ready else NEEDS_PORTRAIT)

    def update_stats(self) -> None:
        """The status line from the bridge's newest stats (kept after a run ends until the next starts)."""
        st = self.bridge.stats()
        if st is None:
            return
        self.status_label.setText(status_text(st))
        self.status_label.setToolTip(f"{st.get('state', '')}\n\n{STATUS_HELP}".strip())
