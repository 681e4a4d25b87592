"""Speech features for the motion model: wav2vec2 hidden states at exactly 25 fps, offline and streaming.

Alignment. wav2vec2's convolutional front end turns 16 kHz audio into 50 Hz frames (receptive field 400
samples, stride 320): frame j of an input sees samples [320 j, 320 j + 400). We pad 40 samples on the left, so 50 Hz
frame j is centred on sample 320 j + 160, and average frames 2k and 2k+1: the 25 fps feature k is centred on sample
640 k + 320, the middle of video frame k's samples [640 k, 640 (k + 1)). K = ceil(N / 640) frames need 640 K + 80
padded samples; the right side is zero-padded to that length. N seconds therefore give exactly 25 N frames.

Normalisation. wav2vec2-base-960h was trained on utterance-normalised audio (zero mean, unit variance), which
needs the whole utterance. We use a causal stand-in that streams: a DC-blocking high-pass and division by a
running RMS (time constant `norm_tau_s`), both recursive filters whose state carries across blocks, so the
normalised samples are bit-identical offline and streaming.

Streaming. Each hop encodes [left context + new frames + lookahead] and keeps only the new frames. Frame k is
final once samples up to 640 (k + 1) + 40 + lookahead have arrived. Self-attention and the positional
convolution see less context than an offline pass over the whole clip, so the features differ from it. The
right-hand context (lookahead) is what matters; the left context barely does (the relative L2 vs offline of a
small random model with per-frame layer norm moves in the third decimal between 0.5 s and 3 s of left context),
and the left context is what every hop pays for. The defaults (0.5 s left, 35 ms lookahead, one-frame hops) keep
a frame's algorithmic latency at 37.5 ms, so a motion model may read two frames of features ahead and still
answer within 120 ms of the voice, and encode about a sixth of the audio the former 3 s / 120 ms did
(`test_default_streaming_is_short_and_four_times_cheaper`). docs/benchmarks.md has the measured error and cost.
`STREAM_TOLERANCE` (relative L2 0.05) is the bound tests enforce at 120 ms of lookahead.

Caveat for wav2vec2-base: its first convolution is followed by a GroupNorm over *time*, a statistic of the
whole encoded window, so no finite context reproduces an offline pass (measured rel L2 ~0.5 with random
weights). Training data is therefore made with `AudioFeatureExtractor.streamed`: the live stream's very hops,
encoded in batches, so the motion model trains on exactly the features it gets live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.signal import lfilter

from core.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

LEFT_PAD = 40
RIGHT_EXTRA = 40  # 640 K + 80 padded samples for K frames = LEFT_PAD + 640 K + RIGHT_EXTRA
# Streamed vs offline features, relative L2 over a clip, at the default context/lookahead with the small test model.
STREAM_TOLERANCE = 0.05
# Not a hub id: the stand-in speech model (`AudioFeatureExtractor.stand_in`), built on the spot, the same every time.
STAND_IN_MODEL = "headcast/stand-in-wav2vec2"


@dataclass
class AudioFeatureConfig:
    model: str = "facebook/wav2vec2-base-960h"  # hub id or local folder
    left_context_s: float = 0.5  # audio before the new frames that each streaming hop re-encodes
    lookahead_ms: float = 35.0  # audio after a frame that must arrive before the frame is emitted
    hop_frames: int = 1  # streaming: frames per encode (1 = lowest latency; more = less compute)
    norm_tau_s: float = 2.0  # time constant of the running RMS normalisation
    max_offline_s: float = 30.0  # longer clips are encoded offline in overlapping chunks (memory)


class FeatureModelError(RuntimeError):
    """The speech model cannot be found or loaded."""


class CausalNormalizer:
    """DC-blocking high-pass + running-RMS gain; state carries across blocks (identical offline / streaming)."""

    def __init__(self, tau_s: float) -> None:
        self.a = float(np.exp(-1.0 / (tau_s * SAMPLE_RATE)))
        self.reset()

    def reset(self) -> None:
        self._hp = np.zeros(1)
        self._ms = np.array([1e-4 * self.a])  # start from a quiet level, not from zero

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros(0, np.float32)
        y, self._hp = lfilter([1.0, -1.0], [1.0, -0.995], x.astype(np.float64), zi=self._hp)
        ms, self._ms = lfilter([1 - self.a], [1.0, -self.a], y * y, zi=self._ms)
        return (y / np.sqrt(np.maximum(ms, 1e-6))).astype(np.float32)


class AudioFeatureExtractor:
    def __init__(self, model: torch.nn.Module, config: AudioFeatureConfig | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.model = model.eval().requires_grad_(False).to(device)
        self.config = config or AudioFeatureConfig()
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path | None = None, config: AudioFeatureConfig | None = None,
                        device: torch.device | str = "cpu") -> AudioFeatureExtractor:
        from transformers import Wav2Vec2Model

        config = config or AudioFeatureConfig()
        name = str(name_or_dir or config.model)
        if name == STAND_IN_MODEL:
            return cls.stand_in(config, device)
        try:
            model = Wav2Vec2Model.from_pretrained(name)
        except Exception as exc:
            raise FeatureModelError(
                f"Cannot load the speech model '{name}' ({exc.__class__.__name__}). Run "
                "`python -m core weights download wav2vec2` or `python -m core weights import DIR`."
            ) from exc
        return cls(model, config, device)

    @classmethod
    def from_config(cls, model_config, config: AudioFeatureConfig | None = None, seed: int = 0,
                    device: torch.device | str = "cpu") -> AudioFeatureExtractor:
        """Random initialisation from a transformers Wav2Vec2Config (tests, benchmarks, stand-ins)."""
        from transformers import Wav2Vec2Model

        with torch.random.fork_rng(devices=[]):  # deterministic per seed, the caller's global RNG untouched
            torch.manual_seed(seed)
            model = Wav2Vec2Model(model_config)
        return cls(model, config, device)

    @classmethod
    def stand_in(cls, config: AudioFeatureConfig | None = None,
                 device: torch.device | str = "cpu") -> AudioFeatureExtractor:
        """The stand-in speech model: `small_config()` with random weights from a fixed seed on a private RNG, so
        it is the same on every run (same torch version) and needs no download. Datasets made with
        `--synthetic-weights` record STAND_IN_MODEL as their speech model, so their motion models render here."""
        from dataclasses import replace

        from transformers import Wav2Vec2Model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = Wav2Vec2Model(cls.small_config())
        return cls(model, replace(config or AudioFeatureConfig(), model=STAND_IN_MODEL), device)

    @staticmethod
    def small_config(hidden: int = 64, layers: int = 2):
        """A small wav2vec2 with the real front end's 320x downsampling (for tests)."""
        from transformers import Wav2Vec2Config

        return Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                              intermediate_size=hidden * 2, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
                              num_conv_pos_embedding_groups=4, do_stable_layer_norm=False)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode_padded(self, padded: np.ndarray) -> torch.Tensor:
        """Normalised, padded samples (length 640 K + 80) -> (K, D) at 25 fps."""
        return self.encode_batch(padded[None])[0]

    @torch.inference_mode()
    def encode_batch(self, padded: np.ndarray) -> torch.Tensor:
        """(B, 640 K + 80) windows of the same length -> (B, K, D) at 25 fps; each window is encoded on its own
        (wav2vec2's GroupNorm and attention are per sample), so a batch gives what B single calls give."""
        x = torch.from_numpy(np.ascontiguousarray(padded, np.float32)).to(self.device)
        hidden = self.model(x).last_hidden_state
        k = (padded.shape[1] - LEFT_PAD - RIGHT_EXTRA) // SAMPLES_PER_FRAME
        return hidden[:, : 2 * k].reshape(len(padded), k, 2, -1).mean(2).float()

    def offline(self, samples: np.ndarray) -> torch.Tensor:
        """The whole clip at once (long clips: streamed with a long context, see `max_offline_s`)."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        if len(samples) > self.config.max_offline_s * SAMPLE_RATE:
            stream = self.stream(left_context_s=self.config.max_offline_s / 2, lookahead_ms=2000)
            return torch.cat((stream.push(samples), stream.flush()))
        k = -(-len(samples) // SAMPLES_PER_FRAME)
        if k == 0:
            return torch.zeros(0, self.dim)
        x = CausalNormalizer(self.config.norm_tau_s)(samples)
        padded = np.zeros(LEFT_PAD + SAMPLES_PER_FRAME * k + RIGHT_EXTRA, np.float32)
        padded[LEFT_PAD : LEFT_PAD + len(x)] = x
        return self.encode_padded(padded)

    def stream(self, lookahead_ms: float | None = None, left_context_s: float | None = None,
               hop_frames: int | None = None) -> StreamingFeatures:
        c = self.config
        return StreamingFeatures(self, c.lookahead_ms if lookahead_ms is None else lookahead_ms,
                                 c.left_context_s if left_context_s is None else left_context_s,
                                 c.hop_frames if hop_frames is None else hop_frames)

    def streamed(self, samples: np.ndarray, hop_frames: int | None = None, batch: int = 32) -> torch.Tensor:
        """A whole clip exactly as `stream(hop_frames=...)` would emit it live (push everything, then flush), with
        the hops' windows encoded `batch` at a time. Training data is made with this, so a motion model trains
        on the very features the app feeds it, at a fraction of one-hop-at-a-time cost."""
        stream = self.stream(hop_frames=hop_frames)
        samples = np.asarray(samples, np.float32).reshape(-1)
        padded = np.concatenate((np.zeros(LEFT_PAD, np.float32), stream.normalizer(samples)))
        stream.samples_in = len(samples)
        hop, ctx = stream.hop_frames, stream.context_frames
        ready = stream._ready() // hop * hop  # frames the pushes would have released
        ahead = stream.lookahead // SAMPLES_PER_FRAME  # whole frames of lookahead a window carries (then dropped)
        # hop starts group by window length: the first ones have less left context, the rest all have `ctx`
        groups: dict[int, list[int]] = {}
        for first in range(0, ready, hop):
            groups.setdefault(min(first, ctx), []).append(first)
        out = torch.zeros(ready, self.dim)
        for have, firsts in groups.items():
            length = LEFT_PAD + (have + hop + ahead) * SAMPLES_PER_FRAME + RIGHT_EXTRA
            for i in range(0, len(firsts), batch):
                chunk = firsts[i : i + batch]
                windows = np.stack([padded[(f - have) * SAMPLES_PER_FRAME :][:length] for f in chunk])
                feats = self.encode_batch(windows)[:, have : have + hop].cpu()
                for f, rows in zip(chunk, feats):
                    out[f : f + hop] = rows
        stream._buf, stream._start, stream.frames_emitted = padded, 0, ready
        return torch.cat((out, stream.flush()))


class StreamingFeatures:
    """Incremental features: push any block size, get the frames that became final."""

    def __init__(self, extractor: AudioFeatureExtractor, lookahead_ms: float, left_context_s: float,
                 hop_frames: int = 1) -> None:
        self.extractor = extractor
        self.lookahead = int(round(lookahead_ms * SAMPLE_RATE / 1000))
        self.context_frames = int(round(left_context_s * SAMPLE_RATE / SAMPLES_PER_FRAME))
        self.hop_frames = max(1, hop_frames)
        self.normalizer = CausalNormalizer(extractor.config.norm_tau_s)
        # normalised samples in padded coordinates, starting at padded index self._start
        self._buf = np.zeros(LEFT_PAD, np.float32)
        self._start = 0
        self.samples_in = 0
        self.frames_emitted = 0

    @property
    def latency_ms(self) -> float:
        """Audio needed after a frame's own samples before it is emitted (lookahead + the 40-sample pad)."""
        return (self.lookahead + RIGHT_EXTRA) * 1000 / SAMPLE_RATE

    def _ready(self) -> int:
        return max(0, (self.samples_in - RIGHT_EXTRA - self.lookahead) // SAMPLES_PER_FRAME)

    def push(self, samples: np.ndarray) -> torch.Tensor:
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._buf = np.concatenate((self._buf, self.normalizer(samples)))
        self.samples_in += len(samples)
        # hops sit on fixed frame boundaries, so every frame is the same function of the audio whatever the block
        # sizes: frame k depends on samples up to 640 (ceil((k + 1) / hop) * hop) + 40 + lookahead
        out = []
        while self.frames_emitted + self.hop_frames <= self._ready():
            out.append(self._encode(self.frames_emitted + self.hop_frames, final=False))
        return torch.cat(out) if out else torch.zeros(0, self.extractor.dim)

    def flush(self) -> torch.Tensor:
        total = -(-self.samples_in // SAMPLES_PER_FRAME)
        if total <= self.frames_emitted:
            return torch.zeros(0, self.extractor.dim)
        return self._encode(total, final=True)

    def _encode(self, upto: int, final: bool) -> torch.Tensor:
        first = self.frames_emitted
        ctx_first = max(0, first - self.context_frames)
        begin = ctx_first * SAMPLES_PER_FRAME - self._start
        # the window's end: frame `upto` needs 640 upto + 80 padded samples, plus the lookahead if available
        end = upto * SAMPLES_PER_FRAME + LEFT_PAD + RIGHT_EXTRA + (0 if final else self.lookahead) - self._start
        window = self._buf[begin:end]
        if len(window) < end - begin:  # end of stream: zero padding, as offline
            window = np.concatenate((window, np.zeros(end - begin - len(window), np.float32)))
        # encode as a clip whose frames start at ctx_first; trailing lookahead frames are discarded
        n_frames = (len(window) - LEFT_PAD - RIGHT_EXTRA) // SAMPLES_PER_FRAME
        usable = LEFT_PAD + n_frames * SAMPLES_PER_FRAME + RIGHT_EXTRA
        feats = self.extractor.encode_padded(window[:usable])
        out = feats[first - ctx_first : upto - ctx_first]
        self.frames_emitted = upto
        # keep only what the next hop's left context needs
        keep_from = max(0, upto - self.context_frames) * SAMPLES_PER_FRAME - self._start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._start += keep_from
        return out


# The streaming defaults before the conversational DiT (3 s of left context, 120 ms lookahead): benchmarks compare
# the cost of today's defaults against them.
FORMER_STREAMING = {"left_context_s": 3.0, "lookahead_ms": 120.0}


def measure_stream_cost(extractor: AudioFeatureExtractor, seconds: float = 10.0) -> tuple[float, float]:
    """Stream `seconds` of noise in 40 ms pushes after a warm-up as long as the left context -> (ms of compute per
    second of audio, seconds of encoder input per second of audio), both over the timed part only."""
    stream = extractor.stream()
    rng = np.random.default_rng(0)
    stream.push(rng.normal(0, 0.1, int(SAMPLE_RATE * (extractor.config.left_context_s + 0.2))).astype(np.float32))
    blocks = rng.normal(0, 0.1, (int(seconds * SAMPLE_RATE) // SAMPLES_PER_FRAME, SAMPLES_PER_FRAME))
    encoded = []
    encode = extractor.encode_batch
    extractor.encode_batch = lambda w: encoded.append(w.size) or encode(w)  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        for block in blocks.astype(np.float32):
            stream.push(block)
        elapsed = time.perf_counter() - t0
    finally:
        del extractor.encode_batch
    return 1000 * elapsed / seconds, sum(encoded) / SAMPLE_RATE / seconds


def measure_hop_ms(extractor: AudioFeatureExtractor, hop_ms: float = 80.0, n: int = 10) -> float:
    """Median ms for one streaming hop: one encode of `hop_ms` new audio (rounded to whole 40 ms frames) with
    the extractor's left context and lookahead. Each timed push releases exactly one hop."""
    hop_frames = max(1, round(hop_ms / 40))
    stream = extractor.stream(hop_frames=hop_frames)
    rng = np.random.default_rng(0)
    warm = rng.normal(0, 0.1, int(SAMPLE_RATE * (extractor.config.left_context_s + 1))).astype(np.float32)
    stream.push(warm)
    block = hop_frames * SAMPLES_PER_FRAME
    times = []
    for _ in range(n):
        x = rng.normal(0, 0.1, block).astype(np.float32)
        t0 = time.perf_counter()
        stream.push(x)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))
