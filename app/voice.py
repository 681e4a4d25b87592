"""The microphone level monitor and the delayed voice: the window's audio streams (not the engine's). The
monitor shows the chosen microphone's level while stopped too; the delayed voice plays that microphone on an
output, late by the avatar's latency, so a call hears voice and mouth together. Qt-free apart from the two
widgets it writes to; the window forwards its controls' changes here."""

from __future__ import annotations

from collections.abc import Callable

from core.live_input import InputChoice

from . import audio_io
from .engine_bridge import NO_MICROPHONE
from .settings import AUTO_DELAY, AppSettings

Say = Callable[..., None]  # show_message(text, warning=False, key=None)


class Voice:
    def __init__(self, settings: AppSettings, meter, delay_label, engine_latency_ms: Callable[[], float],
                 engine_level: Callable[[], tuple[float, float] | None], say: Say) -> None:
        self.settings = settings
        self.meter, self.delay_label = meter, delay_label
        self.engine_latency_ms, self.engine_level, self.say = engine_latency_ms, engine_level, say
        self.monitor: audio_io.InputMonitor | None = None
        self.audio_out: audio_io.DelayedAudioOutput | None = None

    def open_monitor(self, choice: InputChoice | None) -> bool:
        """(Re)open the level stream on the chosen microphone; failures are shown, not raised. True when the
        monitor runs (the delayed voice can then be opened on it)."""
        self.close()
        if choice is None or choice.kind != "mic":
            self.meter.set_level(-120, -120)
            return False
        if choice.value is None and not audio_io.has_default_input():
            self.meter.setToolTip("No default microphone")
            self.say(NO_MICROPHONE, warning=True, key="no-microphone")
            return False
        try:
            device = audio_io.find_device(choice.value, "input")
            self.monitor = audio_io.InputMonitor(device.index if device else None).start()
        except Exception as exc:
            self.monitor = None
            self.meter.setToolTip(f"No level: {exc}")
            self.say(f"Cannot open the microphone {choice.value or '(default)'}: {exc}", warning=True)
            return False
        self.meter.setToolTip(self.monitor.device_name)
        return True

    def _close_output(self) -> None:
        if self.audio_out is not None:
            if self.monitor is not None:
                self.monitor.remove_tap(self.audio_out.push)
            self.audio_out.close()
            self.audio_out = None

    def close(self) -> None:
        self._close_output()
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None

    def open_output(self) -> None:
        """(Re)open the delayed voice per the settings (on, which device), on the running monitor."""
        self._close_output()
        self.delay_label.setText("")
        if self.settings.audio_output_enabled and self.monitor is not None:
            name = self.settings.audio_output_device
            try:
                dev = audio_io.find_device(name, "output")
                self.audio_out = audio_io.DelayedAudioOutput(
                    dev.index if dev else None, self.monitor.samplerate, self.delay_ms()).start()
                self.monitor.add_tap(self.audio_out.push)
            except Exception as exc:
                self.audio_out = None
                self.say(f"Cannot open the audio output {name}: {exc}", warning=True)

    def delay_ms(self) -> float:
        if self.settings.audio_delay_ms != AUTO_DELAY:
            return self.settings.audio_delay_ms
        return self.auto_delay()[0]

    def auto_delay(self) -> tuple[float, str]:
        """The 'auto' voice delay: the mouth-to-frame latency measured by `python -m core bench latency` for
        this device and motion source when there is one, else the running engine's own estimate (and say so)."""
        from core.bench.latency import measured_latency_ms

        measured = measured_latency_ms(self.settings.device, self.settings.motion_source)
        if measured is not None:
            return measured, "measured"
        return self.engine_latency_ms(), "estimated"  # the label's tooltip says how to measure it

    def delay_changed(self) -> None:
        if self.audio_out is not None:
            self.audio_out.set_delay_ms(self.delay_ms())

    def tick(self) -> None:
        """The level meter (the monitor's, else what the engine hears from a file or the test signal) and the
        delayed voice's label; an auto delay follows the avatar's latency."""
        m = self.monitor
        if m is not None:
            self.meter.set_level(m.level, m.peak)
        elif (heard := self.engine_level()) is not None:
            self.meter.set_level(*heard)
        elif self.meter.level > -120:  # stopped on a file or the test signal: nothing is heard now
            self.meter.set_level(-120, -120)
        if self.audio_out is None:
            return
        how = "set"
        if self.settings.audio_delay_ms == AUTO_DELAY:
            target, how = self.auto_delay()
            if abs(target - self.audio_out.delay_ms) > 20:
                self.audio_out.set_delay_ms(target)
        self.delay_label.setText(f"Voice delayed {self.audio_out.delay_ms:.0f} ms ({how}) → "
                                 f"{self.audio_out.device_name}")
        self.delay_label.setToolTip("" if how != "estimated" else
                                    "Estimated from the running avatar; for a measured figure run "
                                    "`python -m core bench latency` once on this computer")
