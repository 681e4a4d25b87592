"""What the "Face driving" group does (issue 25): the choice is written into the settings and saved (the next Start
passes it to the session as `SessionConfig.drive`), the cameras are listed by a background scan, the note says
when there is no camera or when a change waits for the next Start, and the preview follows the run's camera.

The preview's pictures: the driving thread (core/drive/feed.py) keeps only its newest face crop behind a lock, for
whoever wants it; a GUI-thread timer takes it at the preview's rate while face driving runs and copies it into the
preview's own buffer. So no widget is touched off the GUI thread, the driving and engine threads do no work for
the preview, and a busy GUI skips pictures instead of queueing them. Testable alone with a `DrivePanel`, a
`TaskRunner`, settings and a bridge (or anything with `state` and `drive`).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer

from .drive import (
    NEXT_START,
    NO_CAMERA,
    CameraInfo,
    face_driving,
    list_cameras,
    session_drive,
)
from .drive_panel import DrivePanel
from .engine_bridge import EngineBridge
from .settings import AppSettings
from .tasks import TaskRunner

PREVIEW_INTERVAL_MS = 66  # about 15 pictures a second: enough to see the face is framed, cheap for the GUI
NO_CAMERA_KEY = "no-driving-camera"  # said once per session
IDLE_TEXT = "Your camera shows here during a call."
WAITING_TEXT = "Waiting for the camera…"
OFF_TEXT = "The camera is not driving this call: the avatar follows your voice."
IN_USE = "This call is using the camera; rescan after Stop."


class DriveControls:
    """`say` shows a message, `save` persists the settings, `lister()` finds the cameras (blocking: a worker
    runs it)."""

    def __init__(self, panel: DrivePanel, tasks: TaskRunner, settings: AppSettings, bridge: EngineBridge,
                 say: Callable[..., None], save: Callable[[], None],
                 lister: Callable[[], list[CameraInfo]] | None = None) -> None:
        self.panel, self.tasks, self.settings, self.bridge = panel, tasks, settings, bridge
        self.say, self.save = say, save
        # a scan in progress at quit stops before its next camera: closing waits for the task pool's threads
        self.lister = lister or (lambda: list_cameras(stop=lambda: tasks.closed))
        self.cameras: list[CameraInfo] | None = None  # None until a scan answered
        self.scanning = False
        self._seq = -1  # the driving sample the preview shows
        self.timer = QTimer(panel, interval=PREVIEW_INTERVAL_MS, timeout=self.tick)
        panel.mode_combo.activated.connect(self._mode_chosen)
        panel.camera_combo.activated.connect(self._camera_chosen)
        panel.rescan_button.clicked.connect(self.scan)

    def restore(self) -> None:
        """Show the saved choice; a face choice scans for cameras (in the background)."""
        mode = self.settings.drive_mode
        self.panel.set_mode(mode)
        self.panel.fill([], self.settings.drive_camera, scanned=False)  # until a scan answers
        self.update()
        if face_driving(mode):
            self.scan()

    def wanted(self) -> str | None:
        """The `SessionConfig.drive` the next Start gets."""
        return session_drive(self.panel.mode(), self.settings.drive_camera)

    def _mode_chosen(self, _index: int) -> None:
        self.settings.drive_mode = self.panel.mode()
        self.save()
        if face_driving(self.settings.drive_mode) and self.cameras is None:
            self.scan()
        self.update()

    def _camera_chosen(self, _index: int) -> None:
        self.settings.drive_camera = self.panel.camera() or self.settings.drive_camera
        self.save()
        self.update()

    # ---- cameras ------------------------------------------------------------------------------------
    def scan(self) -> None:
        """List the cameras in the background; not while this call holds one (it would not open)."""
        if self.scanning:
            return
        if self.bridge.drive.on:
            self.panel.say(IN_USE)
            return
        self.scanning = True
        self.panel.rescan_button.setEnabled(False)
        self.update()
        self.tasks.spawn(self._scan())

    async def _scan(self) -> None:
        try:
            cameras = await self.tasks.run(self.lister)
        finally:
            self.scanning = False
            self.panel.rescan_button.setEnabled(True)
        self.cameras = cameras
        self.panel.fill(cameras, self.settings.drive_camera)
        if not cameras and face_driving(self.panel.mode()):
            self.say(NO_CAMERA, warning=True, key=NO_CAMERA_KEY)
        self.update()

    # ---- the run ------------------------------------------------------------------------------------
    def show_state(self, state: str) -> None:
        """The bridge's state changed (the window wires the signal)."""
        if state != "running":
            self._seq = -1
            self.panel.preview.clear()
        self.update()

    def update(self) -> None:
        """The note, what the preview shows, and whether the preview timer runs."""
        face = face_driving(self.panel.mode())
        self.panel.show_face_controls(face)
        running = self.bridge.state == "running"
        if self.scanning:
            note = "Looking for cameras…"
        elif running and self.wanted() != self.bridge.drive.spec:
            note = NEXT_START
        elif face and self.cameras == []:
            note = NO_CAMERA
        else:
            note = ""
        self.panel.say(note)
        live = face and running and self.bridge.drive.on
        self.panel.preview.set_placeholder(WAITING_TEXT if live else OFF_TEXT if running and face else IDLE_TEXT)
        if live and not self.timer.isActive():
            self.timer.start()
        elif not live:
            self.timer.stop()

    def tick(self) -> None:
        """GUI thread, at the preview's rate: the newest driving face, if it is new."""
        if not self.bridge.drive.on:  # the camera went away: the preview says so, the timer stops
            self.panel.preview.clear()
            self.update()
            return
        sample = self.bridge.drive.sample()
        if sample is None or sample.seq == self._seq:
            return
        self._seq = sample.seq
        if sample.crop is None:
            self.panel.preview.show_no_face()
        else:
            self.panel.preview.show_crop(sample.crop)
