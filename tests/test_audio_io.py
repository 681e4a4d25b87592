"""Decoding and resampling to 16 kHz mono, and the errors a user sees for bad audio files."""

from __future__ import annotations

import wave

import av
import numpy as np
import pytest

from core.audio.io import AudioLoadError, load_audio, resample, save_wav


def _write_wav(path, data: np.ndarray, sr: int) -> None:
    """data (n, channels) float in [-1, 1] -> 16-bit WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((data * 32767).astype("<i2").tobytes())


@pytest.mark.parametrize("sr", [8000, 44100, 48000])
def test_stereo_file_to_16k_mono(tmp_path, sr):
    n = int(sr * 1.3)
    tt = np.arange(n) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * tt)
    _write_wav(tmp_path / "a.wav", np.stack([tone, tone * 0.5], 1), sr)
    x = load_audio(tmp_path / "a.wav")
    assert x.dtype == np.float32 and x.ndim == 1
    assert len(x) == round(n * 16000 / sr)
    # mono = the mean of the channels; the 440 Hz tone survives resampling with the right amplitude
    spectrum = np.abs(np.fft.rfft(x[2000:-2000]))
    assert abs(np.argmax(spectrum) * 16000 / len(x[2000:-2000]) - 440) < 3
    assert 0.35 < np.abs(x[2000:-2000]).max() < 0.4


def test_compressed_container(tmp_path):
    path = tmp_path / "a.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100, layout="stereo")
        samples = (0.3 * np.sin(2 * np.pi * 220 * np.arange(44100) / 44100)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([samples, samples]), format="fltp", layout="stereo")
        frame.sample_rate = 44100
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    x = load_audio(path)
    assert abs(len(x) - 16000) < 1000 and 0.2 < np.abs(x).max() < 0.4


def test_resample_exact_lengths():
    for n in (1, 639, 16000, 44101):
        assert resample(np.zeros(n, np.float32), 44100, 16000).shape[-1] == round(n * 16000 / 44100)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(AudioLoadError, match=r"not found: .*missing\.wav"):
        load_audio(tmp_path / "missing.wav")
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio at all" * 100)
    with pytest.raises(AudioLoadError, match=r"junk\.mp3"):
        load_audio(junk)
    video = tmp_path / "silent.mp4"
    with av.open(str(video), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height = 64, 64
        for _ in range(5):
            for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    with pytest.raises(AudioLoadError, match=r"silent\.mp4 has no audio track"):
        load_audio(video)


def test_save_wav_roundtrip(tmp_path):
    x = (0.5 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    path = save_wav(tmp_path / "out.wav", x)
    assert np.abs(load_audio(path) - x).max() < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_wav_loads_without_pyav_as_with_it(tmp_path, monkeypatch, width):
    """Machines without PyAV (the lent GPU machine, a headless server) still read PCM WAV: same samples as
    FFmpeg's decode, at every sample width the standard library writes."""
    sr, n = 22050, 22050
    tone = 0.6 * np.sin(2 * np.pi * 330 * np.arange(n) / sr)
    stereo = np.stack([tone, -0.5 * tone], 1)
    if width == 1:
        raw = np.round(stereo * 127 + 128).astype(np.uint8).tobytes()
    else:
        scale = float(2 ** (8 * width - 1) - 1)
        ints = np.round(stereo * scale).astype("<i4")
        raw = ints.astype("<i2").tobytes() if width == 2 else ints.tobytes() if width == 4 else \
            np.ascontiguousarray(ints.view(np.uint8).reshape(-1, 4)[:, :3]).tobytes()
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(width)
        w.setframerate(sr)
        w.writeframes(raw)
    with_av = load_audio(path)
    monkeypatch.setitem(__import__("sys").modules, "av", None)  # import av now raises ImportError
    without = load_audio(path)
    assert without.shape == with_av.shape and len(without) == round(n * 16000 / sr)
    assert np.abs(without - with_av).max() < (1.5 / 128 if width == 1 else 2e-4)
    assert 0.14 < np.abs(without[2000:-2000]).max() < 0.16  # mean of +0.6 and -0.3 of the tone


def test_without_pyav_other_formats_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "av", None)
    (tmp_path / "a.mp3").write_bytes(b"ID3" + bytes(64))
    with pytest.raises(AudioLoadError, match=r"a\.mp3 needs PyAV.*pip install av.*WAV"):
        load_audio(tmp_path / "a.mp3")
    (tmp_path / "b.wav").write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(AudioLoadError, match=r"b\.wav is not a PCM WAV.*pip install av"):
        load_audio(tmp_path / "b.wav")
