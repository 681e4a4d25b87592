"""The app's own sounddevice paths: device lists, the microphone level meter, and the delayed audio output.

Why a delayed output: a call receives the avatar's video late by the pipeline latency while the voice, if
sent straight from the microphone, arrives on time. Routing the microphone through this delay line into a
virtual audio cable (and selecting that cable as the microphone in the call) puts lips and voice back in sync.

Input and output are always separate streams with an explicit blocksize: on PulseAudio's ALSA plug-in a
full-duplex stream records zeros, and the default blocksize varies by host.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BLOCKSIZE = 512


@dataclass(frozen=True)
class AudioDevice:
    index: int
    name: str
    hostapi: str
    channels: int
    samplerate: float

    @property
    def label(self) -> str:
        return f"{self.name} ({self.hostapi})"


def _devices(kind: str) -> list[AudioDevice]:
    import sounddevice as sd

    key = "max_input_channels" if kind == "input" else "max_output_channels"
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except Exception:  # PortAudio missing or broken: an empty list, the window says so
        return []
    return [
        AudioDevice(i, d["name"], hostapis[d["hostapi"]]["name"], int(d[key]), float(d["default_samplerate"]))
        for i, d in enumerate(devices)
        if d[key] > 0
    ]


def input_devices() -> list[AudioDevice]:
    """Devices that can record (microphones, virtual sources), in PortAudio order."""
    return _devices("input")


def output_devices() -> list[AudioDevice]:
    return _devices("output")


def find_device(name: str | None, kind: str = "input") -> AudioDevice | None:
    """The first device of `kind` whose name equals `name` (None: None, the caller uses the default)."""
    if name is None:
        return None
    for d in _devices(kind):
        if d.name == name:
            return d
    return None


def has_default_input() -> bool:
    try:
        import sounddevice as sd

        return sd.default.device[0] >= 0 or sd.query_hostapis(0)["default_input_device"] >= 0
    except Exception:
        return False


def level_dbfs(block: np.ndarray) -> float:
    """RMS level of a block in dB relative to full scale (silence: -inf clamped to -120)."""
    if block.size == 0:
        return -120.0
    rms = math.sqrt(float(np.dot(block, block)) / block.size)
    return max(-120.0, 20.0 * math.log10(rms)) if rms > 0 else -120.0


class InputMonitor:
    """A mono input stream that tracks the level and hands each block to optional taps (audio thread)."""

    def __init__(self, device: int | str | None = None, samplerate: float | None = None,
                 blocksize: int = BLOCKSIZE):
        import sounddevice as sd

        self._sd = sd
        info = sd.query_devices(device, "input")
        self.samplerate = float(samplerate or info["default_samplerate"])
        self.device_name: str = info["name"]
        self.level = -120.0
        self.peak = -120.0
        self.status_flags = 0
        self._taps: list[Callable[[np.ndarray], None]] = []
        self._lock = threading.Lock()
        self._stream = sd.InputStream(
            device=device, channels=1, samplerate=self.samplerate, blocksize=blocksize, dtype="float32",
            callback=self._callback,
        )

    def add_tap(self, fn: Callable[[np.ndarray], None]) -> None:
        with self._lock:
            self._taps = [*self._taps, fn]

    def remove_tap(self, fn: Callable[[np.ndarray], None]) -> None:
        with self._lock:
            self._taps = [t for t in self._taps if t is not fn]

    def _callback(self, indata, frames, time, status) -> None:
        if status:
            self.status_flags += 1
        block = indata[:, 0]
        level = level_dbfs(block)
        self.level = level
        self.peak = max(level, self.peak - 1.5)  # falls 1.5 dB per block
        for tap in self._taps:
            tap(block)

    def start(self) -> InputMonitor:
        self._stream.start()
        return self

    @property
    def active(self) -> bool:
        return bool(self._stream.active)

    def close(self) -> None:
        try:
            self._stream.stop()
        finally:
            self._stream.close()


class DelayLine:
    """A mono FIFO that holds back `delay` samples; push from one thread, read from another.

    Clock drift between the input and the output device slowly changes the fill; `read` re-primes when it
    runs dry and drops the oldest audio when more than `slack` too much is queued.
    """

    def __init__(self, delay: int, capacity: int, slack: int = 1024):
        self._buf = np.zeros(capacity, np.float32)
        self._cap = capacity
        self._r = 0
        self._fill = 0
        self._slack = slack
        self._lock = threading.Lock()
        self.delay = 0
        self.underruns = 0
        self._primed = False
        self.set_delay(delay)

    def set_delay(self, delay: int) -> None:
        delay = int(min(max(delay, 0), self._cap // 2))
        with self._lock:
            self.delay = delay
            if self._primed:
                self._adjust(delay)

    def _adjust(self, target: int) -> None:
        if self._fill < target:  # insert silence before the queued audio
            n = target - self._fill
            self._r = (self._r - n) % self._cap
            self._ring_zero(self._r, n)
            self._fill = target
        elif self._fill > target:  # drop the oldest audio
            n = self._fill - target
            self._r = (self._r + n) % self._cap
            self._fill = target

    def _ring_zero(self, start: int, n: int) -> None:
        end = start + n
        if end <= self._cap:
            self._buf[start:end] = 0.0
        else:
            self._buf[start:] = 0.0
            self._buf[: end - self._cap] = 0.0

    def push(self, samples: np.ndarray) -> None:
        with self._lock:
            n = len(samples)
            if n >= self._cap:
                samples = samples[-self._cap:]
                n = self._cap
            w = (self._r + self._fill) % self._cap
            first = min(n, self._cap - w)
            self._buf[w:w + first] = samples[:first]
            self._buf[: n - first] = samples[first:]
            self._fill += n
            if self._fill > self._cap:  # overflow: keep the newest
                self._r = (self._r + self._fill - self._cap) % self._cap
                self._fill = self._cap

    def read(self, out: np.ndarray) -> None:
        """Fill `out` (1-d float32) with the delayed signal.

        At start and after the input stalled (the queue ran dry) the output is silence until `delay`
        samples are queued, so audio that arrives later still waits the full delay; from then on it plays
        continuously. Too much queued (the input clock runs fast) drops the oldest samples.
        """
        n = len(out)
        with self._lock:
            if not self._primed:
                if self._fill < self.delay + n or self._fill == 0:
                    out[:] = 0.0
                    return
                self._primed = True
            if self._fill > self.delay + n + self._slack:
                self._adjust(self.delay + n)
            take = min(n, self._fill)
            first = min(take, self._cap - self._r)
            out[:first] = self._buf[self._r:self._r + first]
            out[first:take] = self._buf[: take - first]
            out[take:] = 0.0
            self._r = (self._r + take) % self._cap
            self._fill -= take
            if take < n:  # ran dry: the input stalled; wait for a full delay's worth again
                self.underruns += 1
                self._primed = False


class DelayedAudioOutput:
    """Plays pushed mono audio on an output device `delay_ms` later (the lip-sync path for calls).

    `push` is meant to be an `InputMonitor` tap; both streams must use the same sample rate.
    """

    MAX_DELAY_S = 5.0

    def __init__(self, device: int | str | None, samplerate: float, delay_ms: float,
                 blocksize: int = BLOCKSIZE):
        import sounddevice as sd

        self.samplerate = float(samplerate)
        info = sd.query_devices(device, "output")
        self.device_name: str = info["name"]
        self._channels = min(2, int(info["max_output_channels"]))
        cap = int(self.samplerate * self.MAX_DELAY_S * 2) + 4 * blocksize
        self.line = DelayLine(self._samples(delay_ms), cap, slack=blocksize * 2)
        self._mono = np.zeros(blocksize, np.float32)
        self._stream = sd.OutputStream(
            device=device, channels=self._channels, samplerate=self.samplerate, blocksize=blocksize,
            dtype="float32", callback=self._callback,
        )

    def _samples(self, delay_ms: float) -> int:
        return int(round(max(0.0, min(delay_ms, self.MAX_DELAY_S * 1000)) * self.samplerate / 1000))

    @property
    def delay_ms(self) -> float:
        return self.line.delay * 1000.0 / self.samplerate

    def set_delay_ms(self, delay_ms: float) -> None:
        self.line.set_delay(self._samples(delay_ms))

    def push(self, samples: np.ndarray) -> None:
        self.line.push(samples)

    def _callback(self, outdata, frames, time, status) -> None:
        if len(self._mono) != frames:
            self._mono = np.zeros(frames, np.float32)
        self.line.read(self._mono)
        outdata[:] = self._mono[:, None]

    def start(self) -> DelayedAudioOutput:
        self._stream.start()
        return self

    def close(self) -> None:
        try:
            self._stream.stop()
        finally:
            self._stream.close()
