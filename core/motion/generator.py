"""`DiTMotionSource`: streaming speech-to-motion with the DiT, window by window, for a live microphone.

Per window of N frames (N = settings.window, any size; short windows for live use):
  wait until the N frames' audio features are final (streaming wav2vec2, bounded lookahead) ->
  sample x0 with k strided steps and classifier-free guidance, conditioned on the last C generated frames and
  their audio -> denormalise -> gains -> a causal one-pole filter that also joins windows without a seam ->
  blend with the idle motion by voice activity (eased, so the face settles instead of snapping).
The idle motion (mouth at rest, natural blinks, small head sway) comes from the retargeting source fed silence.
Nothing uses future frames beyond the stated lookahead: `latency_ms()` = (N - 1) frames + feature lookahead.
For live use the causal streaming design needs far less; `create` returns it for a streaming checkpoint:

`StreamingDiTMotionSource`: the causal streaming DiT as a motion source, k frames at a time (it shares this
module so that it can reuse the windowed source's state and finishing without an import cycle).

Frame f is generated as soon as the feature stream has produced the features of frame f + L (L = the model's
audio look-ahead) and, for the chunk's first frame, of the chunk's last frame: so by construction

  latency_ms() = feature stream latency + L x 40 ms + (k - 1) x 40 ms (the chunk's wait)

of audio after a frame's own samples. Each call samples k frames with `settings.stream_steps` strided DDIM steps
(guidance folded into one forward pass when the model embeds the scale), conditioned on the last C generated
frames and the audio of those C frames, the k new ones and the L after them. Before the stream starts the
context is neutral motion on silence features; at the end of the stream the missing look-ahead is silence.
Gains, smoothing and the blend with the idle motion by voice activity are the windowed source's
(`DiTMotionSource._finish`), so both designs look the same to the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core import layout
from core.audio.features import STAND_IN_MODEL, AudioFeatureConfig, AudioFeatureExtractor
from core.audio.vad import VoiceActivity
from core.motion.checkpoint import MotionCheckpointError, MotionModel, MotionStats, load_motion_model
from core.motion.diffusion import CosineSchedule, conditioned, guided, sample_ddim
from core.motion.dit import DiTConfig
from core.motion.models import build_dit
from core.motion.retarget_source import RetargetConfig, RetargetMotionSource
from core.motion.rollout import sample_chunk
from core.motion.source import MotionSettings
from core.timebase import FRAME_MS, SAMPLES_PER_FRAME

# The streaming stand-in's speech-feature look-ahead: 37.5 ms + the stream's 2.5 ms pad = 40 ms, so with the
# default audio look-ahead L = 2 (80 ms) and one frame per call a frame needs 120 ms of audio after its own.
STAND_IN_STREAMING_LOOKAHEAD_MS = 37.5


@dataclass
class GeneratorConfig:
    smooth_pose: float = 0.6  # one-pole coefficient (0 = off) for pose, translation and scale
    smooth_expression: float = 0.3
    idle_tau_frames: float = 6.0  # how quickly the face eases into / out of idle (frames)
    eta: float = 0.0  # 0: deterministic DDIM; 1: stochastic


class DiTMotionSource:
    name = "dit"

    def __init__(self, motion_model: MotionModel, features: AudioFeatureExtractor,
                 settings: MotionSettings | None = None, config: GeneratorConfig | None = None,
                 device: torch.device | str = "cpu") -> None:
        if features.dim != motion_model.config.audio_dim:
            raise ValueError(f"the motion model expects {motion_model.config.audio_dim}-d audio features, "
                             f"the speech model gives {features.dim}")
        self.mm = motion_model
        self.features = features
        self.settings = settings or MotionSettings()
        self.config = config or GeneratorConfig()
        self.device = torch.device(device)
        self.schedule = CosineSchedule(motion_model.config.diffusion_steps)
        self.idle = RetargetMotionSource(config=RetargetConfig(lookahead_frames=0, head_deg_idle=0.8))
        self._vad = VoiceActivity()  # one ONNX session for the source's life: reset() runs on every shed
        c = motion_model.config.context
        self._silence_audio = features.offline(np.zeros(SAMPLES_PER_FRAME * c, np.float32)).to(self.device)
        self.reset(None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, checkpoint: str | Path | None = None, synthetic: str | None = None,
               settings: MotionSettings | None = None, device: str = "cpu",
               speech_model: str | Path | None = None, kind: str = "streaming") -> DiTMotionSource:
        """From a trained checkpoint (+ the speech model it names), or random stand-ins when `synthetic` (of
        design `kind`: streaming, what the app uses, or windowed). A streaming checkpoint (or stand-in) gives a
        `StreamingDiTMotionSource`, a windowed one this class."""
        if checkpoint is None:
            if synthetic is None:
                raise FileNotFoundError("No DiT motion model given: train one with `python -m training` and pass "
                                        "--motion-checkpoint, or use --motion retarget.")
            wcfg = AudioFeatureExtractor.small_config(hidden=32, layers=1)
            wcfg.conv_dim = (16,) * 7
            audio_cfg = AudioFeatureConfig(left_context_s=0.5)
            if kind == "streaming":
                audio_cfg.lookahead_ms = STAND_IN_STREAMING_LOOKAHEAD_MS
            features = AudioFeatureExtractor.from_config(wcfg, audio_cfg, seed=0, device=device)
            with torch.random.fork_rng(devices=[]):  # deterministic stand-in, the caller's global RNG untouched
                torch.manual_seed(0)
                dit_cfg = DiTConfig.small_streaming if kind == "streaming" else DiTConfig.small
                model = build_dit(dit_cfg(audio_dim=features.dim)).eval()
                if kind == "streaming":  # training starts the output layer at zero; a stand-in should move
                    torch.nn.init.normal_(model.out.weight, 0.0, 0.5)
            mm = MotionModel(model.to(device), MotionStats(std=np.full(layout.MOTION_DIM, 0.01, np.float32)))
            return cls._for(mm)(mm, features, settings, device=device)
        mm = load_motion_model(checkpoint, device)
        if mm.audio.get("features") == "bands":
            raise MotionCheckpointError(
                f"{checkpoint} was trained on synth's 'bands' features, which the app does not compute. Rebuild the "
                "dataset with `python -m training synth` (its default features are the app's) and train again.")
        cfg = AudioFeatureConfig(**{k: v for k, v in mm.audio.items() if k in AudioFeatureConfig.__dataclass_fields__})
        if speech_model is None and cfg.model != STAND_IN_MODEL:
            from core.weights import WeightsRegistry

            speech_model = WeightsRegistry().path("wav2vec2") / "wav2vec2-base-960h"
        features = AudioFeatureExtractor.from_pretrained(speech_model, cfg, device=device)
        if features.dim != mm.config.audio_dim:
            raise MotionCheckpointError(
                f"{checkpoint} expects {mm.config.audio_dim}-d audio features, the speech model "
                f"{speech_model or cfg.model} gives {features.dim}: it was trained with another speech model. Pass "
                "the one its dataset was made with, or retrain on features of the installed one.")
        return cls._for(mm)(mm, features, settings, device=device)

    @staticmethod
    def _for(mm: MotionModel) -> type[DiTMotionSource]:
        """The source class of the model's design (checkpoint `kind`)."""
        return StreamingDiTMotionSource if mm.config.kind == "streaming" else DiTMotionSource

    # ------------------------------------------------------------------ protocol
    def use_models(self, models) -> None:
        self.idle.use_models(models)

    def bind_portrait(self, portrait) -> None:
        self.idle.bind_portrait(portrait)

    def reset(self, portrait: object | None = None) -> None:
        c = self.mm.config.context
        self._stream = self.features.stream()
        self._vad.reset()
        self.idle.reset(portrait)
        zero = torch.zeros(c, layout.MOTION_DIM, device=self.device)
        self._ctx_motion = self.mm.stats.normalize(zero)[None]  # neutral motion, normalised
        self._ctx_audio = self._silence_audio[None]
        self._feats: list[torch.Tensor] = []
        self._n_feats = 0
        self._speech: list[bool] = []
        self._smoothed: np.ndarray | None = None
        self._idle_w = 1.0
        self._gen = torch.Generator(device="cpu").manual_seed(self.settings.seed)
        self.last_aux: dict[str, np.ndarray] = {"idle_weight": np.zeros(0, np.float32)}

    def configure(self, settings: MotionSettings) -> None:
        self.settings = settings

    def latency_ms(self) -> float:
        return (self.settings.window - 1) * FRAME_MS + self._stream.latency_ms

    def push_audio(self, samples: np.ndarray) -> None:
        feats = self._stream.push(samples)
        if len(feats):
            self._feats.append(feats.to(self.device))
            self._n_feats += len(feats)
        self._speech.extend(self._vad.push(samples).tolist())

    def pull(self) -> np.ndarray:
        out = []
        while self._n_feats >= self.settings.window:
            out.append(self._window(self.settings.window))
        return self._finish(out)

    def flush(self) -> np.ndarray:
        feats = self._stream.flush()
        if len(feats):
            self._feats.append(feats.to(self.device))
            self._n_feats += len(feats)
        tail = self._stream.frames_emitted - len(self._speech)
        if tail > 0:  # the VAD has not seen these partial frames: judge them by their energy as silence
            self._speech.extend([False] * tail)
        out = []
        while self._n_feats > 0:
            out.append(self._window(min(self.settings.window, self._n_feats)))
        return self._finish(out)

    # ------------------------------------------------------------------ internals
    def _take_features(self, n: int) -> torch.Tensor:
        feats = torch.cat(self._feats) if len(self._feats) > 1 else self._feats[0]
        self._feats = [feats[n:]] if len(feats) > n else []
        self._n_feats -= n
        return feats[:n]

    @torch.inference_mode()
    def _window(self, n: int) -> np.ndarray:
        audio = self._take_features(n)
        cond_audio = torch.cat((self._ctx_audio, audio[None]), dim=1)
        ctx = self._ctx_motion
        x_T = torch.randn((1, n, layout.MOTION_DIM), generator=self._gen).to(self.device)
        denoise = guided(conditioned(self.mm.model, ctx, cond_audio), self.settings.cfg_scale)
        x0 = sample_ddim(denoise, self.schedule, (1, n, layout.MOTION_DIM),
                         k=self.settings.steps, eta=self.config.eta, generator=self._gen, device=self.device,
                         x_T=x_T)
        c = self.mm.config.context
        self._ctx_motion = torch.cat((ctx, x0), dim=1)[:, -c:]
        self._ctx_audio = cond_audio[:, -c:]
        return self.mm.stats.denormalize(x0[0]).float().cpu().numpy()

    def _finish(self, windows: list[np.ndarray]) -> np.ndarray:
        if not windows:
            self.last_aux = {"idle_weight": np.zeros(0, np.float32)}
            return np.zeros((0, layout.MOTION_DIM), np.float32)
        rows = layout.apply_gains(np.concatenate(windows), self.settings.expression_gain, self.settings.head_gain)
        n = len(rows)
        speech, self._speech = self._speech[:n], self._speech[n:]
        speech += [False] * (n - len(speech))
        self.idle.push_audio(np.zeros(n * SAMPLES_PER_FRAME, np.float32))
        idle = self.idle.pull()
        idle = np.concatenate((idle, np.zeros((n - len(idle), layout.MOTION_DIM), np.float32)))[:n]
        a = np.full(layout.MOTION_DIM, self.config.smooth_expression, np.float32)
        a[layout.POSE] = a[layout.T] = a[layout.SCALE] = self.config.smooth_pose
        k = 1.0 / self.config.idle_tau_frames
        weights = np.zeros(n, np.float32)
        out = np.empty_like(rows)
        for i in range(n):
            self._smoothed = rows[i] if self._smoothed is None else a * self._smoothed + (1 - a) * rows[i]
            self._idle_w += k * ((0.0 if speech[i] else 1.0) - self._idle_w)
            weights[i] = self._idle_w
            out[i] = (1 - self._idle_w) * self._smoothed + self._idle_w * idle[i]
        self.last_aux = {"idle_weight": weights}
        return out


class StreamingDiTMotionSource(DiTMotionSource):
    name = "dit"

    def reset(self, portrait: object | None = None) -> None:
        super().reset(portrait)
        c = self.mm.config.context
        self._audio = self._silence_audio[-c:].clone()  # the last c generated frames' audio, then pending frames'

    def chunk(self) -> int:
        return int(self.settings.chunk or self.mm.config.chunk)

    def latency_ms(self) -> float:
        return self._stream.latency_ms + (self.mm.config.lookahead + self.chunk() - 1) * FRAME_MS

    def push_audio(self, samples: np.ndarray) -> None:
        feats = self._stream.push(samples)
        if len(feats):
            self._audio = torch.cat((self._audio, feats.to(self.device)))
        self._speech.extend(self._vad.push(samples).tolist())

    def pull(self) -> np.ndarray:
        out = []
        k, lookahead = self.chunk(), self.mm.config.lookahead
        while self._pending() >= k + lookahead:
            out.append(self._call(k))
        return self._finish(out)

    def flush(self) -> np.ndarray:
        feats = self._stream.flush()
        if len(feats):
            self._audio = torch.cat((self._audio, feats.to(self.device)))
        tail = self._stream.frames_emitted - len(self._speech)
        if tail > 0:  # the VAD has not seen these partial frames: judge them by their energy as silence
            self._speech.extend([False] * tail)
        n_left = self._pending()
        lookahead = self.mm.config.lookahead
        # the stream has ended: the look-ahead past its last frame is silence
        self._audio = torch.cat((self._audio, self._silence_audio[-1:].expand(lookahead + self.chunk(), -1)))
        out = []
        while n_left > 0:
            n = min(self.chunk(), n_left)
            out.append(self._call(n))
            n_left -= n
        return self._finish(out)

    # ------------------------------------------------------------------ internals
    def _pending(self) -> int:
        return len(self._audio) - self.mm.config.context

    @torch.inference_mode()
    def _call(self, k: int) -> np.ndarray:
        c, lookahead = self.mm.config.context, self.mm.config.lookahead
        x_T = torch.randn((1, k, layout.MOTION_DIM), generator=self._gen).to(self.device)
        x0 = sample_chunk(self.mm.model, self.schedule, self._ctx_motion, self._audio[None, : c + k + lookahead], k,
                          self.settings.stream_steps, self.settings.cfg_scale, x_T, self.config.eta, self._gen)
        self._ctx_motion = torch.cat((self._ctx_motion, x0), dim=1)[:, -c:]
        self._audio = self._audio[k:]
        return self.mm.stats.denormalize(x0[0]).float().cpu().numpy()
