"""Face driving as the app offers it (issue 25): what "Drive with" means for the session, which local cameras
there are, and the words for what happened to face driving in a run. Qt-free, so testable with plain values.

The choices map onto the core's live driving (core/drive/live.py) like this:
  voice        no `SessionConfig.drive`: speech drives everything (as before issue 25)
  face + voice `SessionConfig.drive = "camera:N"`: head, eyes and expression from the camera, the mouth from the
               voice (core/drive/mix.py's default `Split`)
  face         the same, with `SessionConfig.drive_options.split` = FACE_ONLY: the mouth follows the camera too (the
               voice only clocks the rows, and drives everything while no face is in view)
A change while live applies at the next Start: restarting a call because a drop-down moved would cut the
avatar off for seconds, so the panel says so instead.

Cameras are found by opening indices 0..MAX_CAMERA_INDEX in turn (OpenCV has no list call), each time-boxed by
the core's `Camera.open` and all together by SCAN_BUDGET_S: blocking, so the app calls `list_cameras` from a
worker. Opening a camera can flash its light or ask the OS for permission, so the app scans only once the user
asks for face driving, never at every start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.drive.camera import Camera, CameraError, camera_index
from core.drive.config import LiveDriveOptions
from core.drive.mix import FACE_ONLY

VOICE, FACE, FACE_VOICE = "voice", "face", "face+voice"
DRIVE_MODES = (VOICE, FACE, FACE_VOICE)
MODE_LABELS = {VOICE: "Voice", FACE: "Face", FACE_VOICE: "Face + voice"}
MODE_TIPS = {
    VOICE: "Your voice drives the avatar: mouth, head and eyes follow the speech.",
    FACE: "Head, eyes, expression and mouth follow your face in the camera. Without a face in view the avatar "
          "eases back to your voice.",
    FACE_VOICE: "Head, eyes and expression follow your face in the camera; the mouth follows your voice, so the "
                "lips stay exact on a poor or dark camera. Without a face in view the avatar eases back to voice.",
}
DEFAULT_CAMERA = "camera:0"
MAX_CAMERA_INDEX = 5  # indices 0..5 are scanned: built-in, a couple of USB cameras, and the virtual devices
PER_CAMERA_S = 2.0  # one camera that has not opened by then is left out (busy, or a driver that hangs)
SCAN_BUDGET_S = 6.0  # the whole scan; the indices not reached by then are left out
NO_CAMERA = ("No camera found. Plug one in (or close the app that holds it) and press the rescan button; until "
             "then the avatar follows your voice.")
NEXT_START = "Changes apply at the next Start (press Stop, then Start)."


def face_driving(mode: str) -> bool:
    return mode in (FACE, FACE_VOICE)


def session_drive(mode: str, camera: str) -> str | None:
    """`SessionConfig.drive` for a "Drive with" choice and camera spec (None: voice only)."""
    return (camera or DEFAULT_CAMERA) if face_driving(mode) else None


def session_drive_options(mode: str) -> LiveDriveOptions | None:
    """`SessionConfig.drive_options` for a "Drive with" choice (None: the core's defaults, the mouth from the voice;
    webcam smoothing is on either way)."""
    return LiveDriveOptions(split=FACE_ONLY) if mode == FACE else None


@dataclass(frozen=True)
class CameraInfo:
    spec: str  # what SessionConfig.drive takes: "camera:N"
    label: str  # what the list shows


def camera_name(index: int, sysfs: Path = Path("/sys/class/video4linux")) -> str | None:
    """The device's own name where the OS tells it without opening it (Linux: sysfs), else None."""
    try:
        return (sysfs / f"video{index}" / "name").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _opens(index: int, timeout_s: float) -> bool:
    try:
        Camera(index).open(timeout_s).close()
    except CameraError:
        return False
    return True


def list_cameras(opens: Callable[[int, float], bool] = _opens, name: Callable[[int], str | None] = camera_name,
                 max_index: int = MAX_CAMERA_INDEX, budget_s: float = SCAN_BUDGET_S,
                 clock: Callable[[], float] = time.monotonic,
                 stop: Callable[[], bool] = lambda: False) -> list[CameraInfo]:
    """The cameras that open now, in index order. Blocking (up to `budget_s`): call it from a worker. `stop()`
    ends the scan before the next index (the app quitting need not wait for the whole scan)."""
    deadline = clock() + budget_s
    found = []
    for index in range(max_index + 1):
        left = deadline - clock()
        if left <= 0 or stop():
            break
        if opens(index, min(PER_CAMERA_S, left)):
            own = name(index)
            found.append(CameraInfo(f"camera:{index}", f"Camera {index}" + (f" — {own}" if own else "")))
    return found


def camera_label(spec: str) -> str:
    index = camera_index(spec)
    return f"Camera {index}" if index is not None else Path(spec).name


def _what_went_wrong(text: str) -> str:
    """The core's camera errors end with the command line's fix ("--drive camera:N") and the speech fallback
    ("; the avatar continues ..."): keep the first sentence, what went wrong, in lower case to follow a clause."""
    head = text.split(". ")[0].split("; ")[0].rstrip(".")
    return head[:1].lower() + head[1:]


def open_failed_message(exc: BaseException) -> str:
    """One line for a driving camera that would not open at Start; the run goes on with the voice."""
    return (f"Face driving is off for this call because {_what_went_wrong(str(exc))}. The avatar follows your "
            "voice. Close other apps that use the camera, or choose another one under Drive with, then press Stop "
            "and Start.")


def lost_message(why: str) -> str:
    """One line for a driving camera lost mid-call (`why`: the core's reason); the run goes on with the voice."""
    return (f"Face driving stopped because {_what_went_wrong(why)}. The call goes on with your voice; plug the "
            "camera back in (or close the app that took it), then press Stop and Start.")


def same_reason(message: str, gone: str | None) -> bool:
    """Whether a session message is the driving thread's own line for `gone` (it says it once, capitalised)."""
    return bool(gone) and message.rstrip(".").lower() == gone.rstrip(".").lower()


def status_words(spec: str | None, *, fell_back: bool, gone: bool, face_seen: bool, face_only: bool = False) -> str:
    """The status line's few words about face driving ("" without it)."""
    if spec is None:
        return ""
    if fell_back:
        return f"face driving off ({camera_label(spec)} did not open): voice only"
    if gone:
        return f"face driving lost ({camera_label(spec)}): voice only"
    mode = "face" if face_only else "face + voice"
    return f"{mode} ({camera_label(spec)}{'' if face_seen else ', no face in view'})"
