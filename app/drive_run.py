"""Face driving in one run of the app (issue 25), owned by the bridge: the start that falls back to voice when the
camera will not open, the session's driving messages in the app's words, the newest driving sample for the
camera preview, and the status line's words. Qt-free: the bridge posts what it returns.

Why the fallback lives here: the session refuses a start whose camera cannot open (right for `python -m core live`,
where the user asked for the camera on the command line and gets exit code 2). In the app the user is in a call:
one clear message, and the same start again without the camera, so the avatar goes live on the voice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from core.drive.camera import CameraError
from core.drive.config import LiveDriveOptions
from core.drive.feed import DrivingSample
from core.drive.mix import FACE_ONLY
from core.drive.video import DrivingVideoError
from core.session import LiveSession, SessionConfig

from .drive import lost_message, open_failed_message, same_reason, status_words

log = logging.getLogger(__name__)


class DriveRun:
    """`spec`: the camera the current (or last) run asked for (None: voice only); `fell_back`: it did not open
    and the run went on with the voice; `lost`: it went away mid-run."""

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self.spec: str | None = None
        self.face_only = False  # the face drives the mouth too ("Face")
        self.fell_back = False
        self.lost = False

    def start(self, config: SessionConfig, start: Callable[[SessionConfig], str],
              say: Callable[[str], None]) -> str:
        """`start(config)` (the session's start); a driving camera that cannot open is said through `say` and the
        same start runs again without it. Worker thread."""
        self.spec, self.fell_back, self.lost = config.drive, False, False
        options = config.drive_options
        self.face_only = isinstance(options, LiveDriveOptions) and options.split == FACE_ONLY
        try:
            return start(config)
        except (CameraError, DrivingVideoError) as exc:
            if config.drive is None:
                raise
            log.info("face driving off for this run: %s", exc)
            self.fell_back = True
            say(open_failed_message(exc))
            return start(dataclasses.replace(config, drive=None))

    def words(self, message: str) -> str:
        """A session message in the app's words: the driving thread's "camera lost" line gets the app's fix.
        GUI thread (the bridge re-posts session messages there)."""
        drive = self.session.drive
        gone = drive.feed.gone if drive is not None else None
        if same_reason(message, gone):
            self.lost = True
            return lost_message(gone)
        return message

    def sample(self) -> DrivingSample | None:
        """The newest face the driving thread published (None without face driving or before the first)."""
        drive = self.session.drive
        return drive.feed.latest() if drive is not None and not drive.feed.gone else None

    def status(self) -> str:
        """A few words for the status line ("" without face driving)."""
        drive = self.session.drive
        gone = self.lost or (drive is not None and bool(drive.feed.gone))
        sample = self.sample()
        return status_words(self.spec, fell_back=self.fell_back, gone=gone,
                            face_seen=sample is not None and sample.crop is not None, face_only=self.face_only)

    @property
    def on(self) -> bool:
        """Face driving is running now (asked for, opened, and not lost)."""
        drive = self.session.drive
        return self.spec is not None and not self.fell_back and drive is not None and not drive.feed.gone
