"""The virtual camera as the window shows it: which backend would be used (probed once in the background), the
Outputs group's "Virtual camera" switch and the label under it. The running session opens the real camera; this
module only asks pyvirtualcam what is there and says what to install when nothing is.
Testable alone: `CameraStatus(switch, label, tasks, ...)`, then `check()` and `show("idle")`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtWidgets import QCheckBox, QLabel

from core.engine.sinks import camera_install_hint

from .settings import AppSettings
from .tasks import TaskRunner

log = logging.getLogger(__name__)
UNAVAILABLE = "Virtual camera unavailable"  # how a message about a missing camera starts (core/session.py too)
CAMERA_MESSAGE_KEY = "camera-unavailable"  # such a message is shown once per session


def camera_backends() -> list[str]:
    """pyvirtualcam backends registered for this OS (the first that opens is used)."""
    try:
        from pyvirtualcam import camera
    except Exception:
        return []
    return list(camera.BACKENDS)


def probe_camera(width: int = 64, height: int = 64, fps: float = 25) -> tuple[bool, str]:
    """Open and close a virtual camera to learn which backend and device would be used.

    Returns (True, "backend: device") or (False, what to install and the backend errors). Blocking (tens of
    milliseconds to a second): call it from a worker thread.
    """
    try:
        import pyvirtualcam
    except Exception as exc:
        return False, f"pyvirtualcam is not importable ({exc}); pip install pyvirtualcam"
    try:
        with pyvirtualcam.Camera(width=width, height=height, fps=fps) as cam:
            return True, f"{cam.backend}: {cam.device}"
    except Exception as exc:
        return False, f"{camera_install_hint()}\n({str(exc).strip()})"


def camera_description() -> str:
    """What the label says before the probe answers: the registered backends, or what to install."""
    names = camera_backends()
    return f"backends: {' / '.join(names)} (checking…)" if names else camera_install_hint()


class CameraStatus:
    """Owns the probe's answer (`available`: None until it comes) and the camera label. `running()` says whether
    a run holds the camera (its own state then wins the label), `wanted(on)` passes the switch to the bridge,
    `say` shows a message, `save` persists the setting."""

    def __init__(self, switch: QCheckBox, label: QLabel, tasks: TaskRunner, settings: AppSettings,
                 running: Callable[[], bool], wanted: Callable[[bool], None], say: Callable[..., None],
                 save: Callable[[], None]) -> None:
        self.switch, self.label, self.tasks, self.settings = switch, label, tasks, settings
        self._running, self._wanted, self._say, self._save = running, wanted, say, save
        self.available: bool | None = None  # None until the background probe answers
        self._probe_label = ""
        switch.toggled.connect(self.toggled)

    def restore(self) -> None:
        """Show the saved switch and what is known before the probe answers."""
        self.switch.setChecked(self.settings.camera_enabled)
        self.show(camera_description() if self.settings.camera_enabled else "off")

    def check(self) -> None:
        """Probe the virtual camera in the background; the label names the backend or what to install."""
        self.available = None
        self.tasks.spawn(self._probe())

    async def _probe(self) -> None:
        ok, text = await self.tasks.run(probe_camera)
        self.available = ok
        self._probe_label = f"Ready — {text}" if ok else text.splitlines()[0]
        if self.switch.isChecked() and not self._running():
            self.show(self._probe_label)
        self.label.setToolTip(text)  # the full hint with the commands
        if not ok and self.switch.isChecked():
            what_to_do = text.split("\n(")[0]  # the backend's own error stays in the label's tooltip and the log
            log.info("virtual camera probe: %s", text)
            self._say(f"{UNAVAILABLE}; the preview still works. {what_to_do}", warning=True, key=CAMERA_MESSAGE_KEY)

    def toggled(self, on: bool) -> None:
        self.settings.camera_enabled = on
        self._wanted(on)
        if not on:
            self.show("off")
        elif not self._running():
            self.show(camera_description())
        self._save()

    def show(self, text: str) -> None:
        """The label: a run's camera state, "off", or "idle" (a run ended: back to what the probe found)."""
        if text == "idle":
            text = self._probe_label or "idle"
        self.label.setText(text)
        if text not in ("off", "idle"):
            self.label.setToolTip(text)
