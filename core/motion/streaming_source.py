"""`StreamingDiTMotionSource`: the causal streaming DiT as a motion source, k frames at a time.

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

import numpy as np
import torch

from core import layout
from core.motion.generator import DiTMotionSource
from core.motion.rollout import sample_chunk
from core.timebase import FRAME_MS


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
