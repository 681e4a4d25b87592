"""What feeds a live session: the input choice (microphone, file, test generator), finding a microphone by
name, and the input level meter. Qt-free; `core.session` builds the audio source from these."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.timebase import SAMPLE_RATE

INPUT_KINDS = ("mic", "file", "generator")


@dataclass(frozen=True)
class InputChoice:
    """What feeds the engine: a microphone by name (None: default), an audio file, or the test generator."""

    kind: str  # "mic" | "file" | "generator"
    value: str | None = None

    @staticmethod
    def parse(text: str) -> InputChoice:
        """CLI form: 'mic', 'mic:NAME', 'test' / 'generator', or a file path."""
        if text in ("mic", "default"):
            return InputChoice("mic")
        if text.startswith("mic:"):
            return InputChoice("mic", text[4:] or None)
        if text in ("test", "generator"):
            return InputChoice("generator")
        return InputChoice("file", text)


class MicrophoneNotConnected(RuntimeError):
    """A microphone chosen by name is not among the input devices."""


def find_input_device(name: str | None) -> int | None:
    """sounddevice index of the input device called exactly `name` (None: the default device)."""
    import sounddevice as sd

    if name is None:
        try:
            sd.query_devices(kind="input")
        except Exception:  # no default input: PortAudio would later say "Error querying device -1"
            raise MicrophoneNotConnected("No microphone found on this computer. Plug one in, or use an audio file "
                                         "or the test signal as the input.") from None
        return None

    for i, d in enumerate(sd.query_devices()):
        if d["name"] == name and d["max_input_channels"] > 0:
            return i
    raise MicrophoneNotConnected(f"The microphone {name!r} is not connected. Plug it in (then rescan), or pick "
                                 "another input.")


class LevelMeter:
    """Input level of the newest block in dBFS, with a peak that decays 20 dB/s; updated on the source
    thread, read from anywhere (two floats, no lock needed)."""

    def __init__(self) -> None:
        self.level = -120.0
        self.peak = -120.0
        self._n = 0

    def __call__(self, block: np.ndarray, capture_time: float = 0.0) -> None:
        n = len(block)
        rms = math.sqrt(float(np.dot(block, block)) / n) if n else 0.0
        self.level = max(-120.0, 20.0 * math.log10(rms)) if rms > 0 else -120.0
        self.peak = max(self.level, self.peak - 20.0 * n / SAMPLE_RATE)

    def reset(self) -> None:
        self.level = self.peak = -120.0
