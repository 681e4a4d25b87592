"""Audio sources: where 16 kHz mono samples come from (microphone, file, generator).

A source calls `deliver(samples, capture_time)` from its own thread; `capture_time` is the time.monotonic()
at which the block's first sample was captured (for a file or generator: when it would have been).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

from .clock import REAL_TIME, Clock

Deliver = Callable[[np.ndarray, float], None]


class AudioSourceError(RuntimeError):
    """The audio input cannot be opened or stopped working."""


class _ThreadSource:
    """Base for sources that produce blocks on a thread of their own."""

    realtime = True

    def __init__(self, block: int, clock: Clock | None = None) -> None:
        self.block = block
        self.clock = clock or REAL_TIME  # a sped-up clock runs generated audio faster (tests)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.finished = threading.Event()
        self.on_error: Callable[[BaseException], None] | None = None  # set by the engine

    def start(self, deliver: Deliver) -> None:
        self._stop.clear()
        self.finished.clear()
        self._thread = threading.Thread(target=self._run, args=(deliver,), name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def _blocks(self):
        raise NotImplementedError

    def _run(self, deliver: Deliver) -> None:
        clock = self.clock
        t0 = clock.now()
        sent = 0
        try:
            for samples in self._blocks():
                if self._stop.is_set():
                    return
                capture = t0 + sent / SAMPLE_RATE
                if self.realtime:  # a block is available once its last sample has been "recorded"
                    delay = capture + len(samples) / SAMPLE_RATE - clock.now()
                    if delay > 0 and clock.wait(self._stop, delay):
                        return
                else:
                    capture = clock.now()
                deliver(samples, capture)
                sent += len(samples)
        except Exception as exc:  # a generator that raises, a file that vanished mid-read
            if self.on_error is not None:
                self.on_error(exc)
        finally:
            self.finished.set()


class FileSource(_ThreadSource):
    """An audio file (or an array of 16 kHz samples), in real time or as fast as the engine takes it."""

    def __init__(self, path_or_samples: str | Path | np.ndarray, realtime: bool = False, block: int = SAMPLES_PER_FRAME,
                 clock: Clock | None = None, loop: bool = False) -> None:
        super().__init__(block, clock)
        self.loop = loop  # real time only: start again at the end instead of finishing
        if isinstance(path_or_samples, np.ndarray):
            self.samples = np.asarray(path_or_samples, np.float32).reshape(-1)
            self.name = "samples"
        else:
            from core.audio.io import load_audio

            self.samples = load_audio(path_or_samples)  # raises AudioLoadError with the file's name
            self.name = str(path_or_samples)
        self.realtime = realtime

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def _blocks(self):
        while True:
            for i in range(0, len(self.samples), self.block):
                yield self.samples[i : i + self.block]
            if not (self.loop and self.realtime and len(self.samples)):
                return


class GeneratorSource(_ThreadSource):
    """Samples from a function `fn(n, t0) -> (n,) float32` (t0 in seconds), in real time; for tests and demos.

    The default produces speech-like syllables: a buzzy 140 Hz tone modulated at 4 Hz with pauses.
    """

    def __init__(self, fn: Callable[[int, float], np.ndarray] | None = None, duration_s: float | None = None,
                 realtime: bool = True, block: int = 320, clock: Clock | None = None) -> None:
        super().__init__(block, clock)
        self.fn = fn or syllables
        self.duration_s = duration_s
        self.realtime = realtime

    def _blocks(self):
        n = 0
        while self.duration_s is None or n < self.duration_s * SAMPLE_RATE:
            yield np.asarray(self.fn(self.block, n / SAMPLE_RATE), np.float32)
            n += self.block


def syllables(n: int, t0: float) -> np.ndarray:
    t = t0 + np.arange(n) / SAMPLE_RATE
    voice = np.sign(np.sin(2 * np.pi * 140 * t)) * 0.5 + np.sin(2 * np.pi * 280 * t) * 0.3
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.25 * t) > -0.3)
    return (0.3 * voice * envelope).astype(np.float32)


def block_capture_time(now: float, stream_time: float, adc_time: float, frames: int, input_latency: float) -> float:
    """time.monotonic() at which a callback's first sample was captured. PortAudio's ADC time (stream clock) says
    it exactly; many ALSA/PulseAudio setups report 0, and then the block's own length plus the stream's input
    latency is how long ago it began (the callback's own time would leave input buffering out of the latency)."""
    if adc_time:
        return now - max(0.0, stream_time - adc_time)
    return now - frames / SAMPLE_RATE - max(0.0, float(input_latency or 0.0))


class MicrophoneSource:
    """A sounddevice input stream at 16 kHz mono with an explicit block size."""

    realtime = True

    def __init__(self, device: int | str | None = None, block: int = 320) -> None:
        self.device = device
        self.block = block
        self._stream = None
        self._stopping = False
        self.finished = threading.Event()
        self.on_error: Callable[[BaseException], None] | None = None  # set by the engine

    def start(self, deliver: Deliver) -> None:
        self._stopping = False
        try:
            import sounddevice as sd
        except OSError as exc:
            raise AudioSourceError(f"PortAudio is not available ({exc}). Install it: "
                                   "`sudo apt-get install libportaudio2` (Linux).") from exc

        def callback(indata, frames, time_info, status) -> None:
            stream = self._stream
            deliver(indata[:, 0].copy(), block_capture_time(time.monotonic(), stream.time,
                                                            time_info.inputBufferAdcTime, frames, stream.latency))

        try:
            self._stream = sd.InputStream(device=self.device, channels=1, samplerate=SAMPLE_RATE, dtype="float32",
                                          blocksize=self.block, callback=callback, finished_callback=self._ended)
            self._stream.start()
        except Exception as exc:
            raise AudioSourceError(
                f"Cannot open the microphone {self.device!r}: {exc}. Plug it in or pick another input device."
            ) from exc

    def _ended(self) -> None:
        """PortAudio ended the stream: unplugged or failed device, unless we asked it to stop."""
        if not self._stopping and self.on_error is not None:
            self.on_error(AudioSourceError(f"The microphone {self.device!r} stopped delivering audio (unplugged?). "
                                           "Plug it back in or pick another input, then start again."))

    def stop(self) -> None:
        self._stopping = True
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        self.finished.set()
