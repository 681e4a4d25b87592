"""A private user-space PulseAudio server: a null sink S whose monitor is remapped as source M.

Why: the latency bench needs a real audio path (a server, its buffering, PortAudio's capture timestamps)
without a sound card or a desktop session. Audio played to the default sink comes back on the default source,
like a voice into a microphone. The same setup as the app's audio tests (tests/test_app_audio.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.timebase import SAMPLE_RATE


class PulseUnavailable(RuntimeError):
    """pulseaudio is not installed or did not start."""


@contextmanager
def private_pulse() -> Iterator[str]:
    """Start the server, point this process's PortAudio at it, yield the device name ('pulse'), clean up."""
    binary = shutil.which("pulseaudio")
    if binary is None:
        raise PulseUnavailable("pulseaudio is not installed: `sudo apt-get install pulseaudio pulseaudio-utils "
                               "libasound2-plugins` (Linux), then run the benchmark again.")
    runtime = Path(tempfile.mkdtemp(prefix="headcast-pulse-"))
    runtime.chmod(0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime)}
    result = subprocess.run(
        [binary, "--daemonize", "--exit-idle-time=-1", "-n", "--disable-shm=true",
         f"--load=module-null-sink sink_name=S rate={SAMPLE_RATE}",
         "--load=module-remap-source master=S.monitor source_name=M",
         "--load=module-native-protocol-unix"],
        env=env, capture_output=True, text=True, timeout=30,
    )
    if result.returncode != 0:
        raise PulseUnavailable(f"pulseaudio did not start: {result.stderr.strip()[-500:]}")
    pidfile, socket = runtime / "pulse" / "pid", runtime / "pulse" / "native"
    for _ in range(200):
        if socket.exists() and pidfile.exists():
            break
        time.sleep(0.05)
    else:
        raise PulseUnavailable("pulseaudio started but opened no socket within 10 s")
    pid = int(pidfile.read_text().split()[0])
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    os.environ["PULSE_SERVER"] = f"unix:{socket}"
    import sounddevice as sd

    sd._terminate()  # PortAudio enumerates devices at initialisation: re-scan now that a server exists
    sd._initialize()
    try:
        yield "pulse"
    finally:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(runtime, ignore_errors=True)
