"""Engine benchmark: the streaming engine on a file source vs a configuration that mimics the reference design.

Ours: the real `Engine` with a `FileSource` running as fast as it can (batched rendering, paste-back on the
device, one uint8 copy per batch; on the CPU the paste writes straight into host memory, so no copy exists).
Reference-like: the same networks and motion, but 65-frame motion windows, float32 face crops copied to the
host and pasted back on the CPU per frame (cv2 warp of the face and its mask, float blend, uint8 conversion).
Networks are stand-ins of the chosen size with random weights (speed does not depend on the weights' values).
Live latency is modelled from measured compute: motion lookahead + window fill + per-frame (ours) or per-window
(reference) compute; the engine's own latency figure in a real-time run is in `EngineStats.latency_ms`.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from core.cli_args import add_size_argument
from core.timebase import SAMPLES_PER_FRAME

REFERENCE_WINDOW = 65


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    add_size_argument(parser, default="official")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per configuration (default: 4 at official size on CPU, where one frame "
                             "takes seconds; 50 tiny; 100 on a GPU)")
    parser.add_argument("--batch", type=int, default=8, help="engine batch size for the file source")
    parser.add_argument("--motion", default="retarget", help="motion source kind (default retarget)")
    parser.add_argument("--backend", default="eager",
                        help="renderer backend: eager | compile | cudagraph | onnx | auto")
    parser.add_argument("--precision", default=None, help="fp32 | fp16 | bf16 (default: fp16 on CUDA, else fp32)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def run_ours(renderer, motion, image: np.ndarray, audio: np.ndarray, batch: int) -> dict[str, float]:
    from core.engine import Engine, EngineSettings, FileSource

    engine = Engine(renderer, motion, EngineSettings(max_batch=batch))
    portrait = engine.set_portrait(image)
    renderer.render(portrait, np.zeros((1, 70), np.float32))  # page the weights in
    errors: list[BaseException] = []
    engine.on_error = errors.append
    t0 = time.perf_counter()
    engine.start(FileSource(audio, realtime=False))
    while not engine.wait(0.1):
        if errors:
            raise RuntimeError(f"engine failed: {errors[0]}")
    wall = time.perf_counter() - t0
    st = engine.stats()
    engine.close()
    n = st.frames_emitted
    copy_s = 0.0
    if renderer.spec.device.type != "cpu":  # time the one uint8 device->host copy per batch on its own
        frames = renderer.frame_buffer(portrait, batch)
        host = torch.empty(frames.shape, dtype=torch.uint8, pin_memory=renderer.spec.is_cuda)
        _sync(renderer.spec.device)
        t = time.perf_counter()
        for _ in range(5):
            host.copy_(frames, non_blocking=True)
        _sync(renderer.spec.device)
        copy_s = (time.perf_counter() - t) / 5 / batch
    per_frame = wall / n
    return {"frames": n, "motion": st.stage_ms["motion"] / 1e3, "render": st.stage_ms["render"] / 1e3,
            "copy": copy_s, "paste_cpu": 0.0, "total": per_frame, "first": st.first_frame_ms / 1e3,
            "lookahead": motion.latency_ms() / 1e3, "window": 1}


@torch.inference_mode()
def run_reference(renderer, motion, image: np.ndarray, audio: np.ndarray) -> dict[str, float]:
    """65-frame windows; fp32 faces to the host; CPU paste-back per frame."""
    from core.render import feather_mask

    spec = renderer.spec
    portrait = renderer.prepare(image)
    motion.reset(portrait)
    t0 = time.perf_counter()
    motion.push_audio(audio)
    rows = np.concatenate((motion.pull(), motion.flush()))
    t_motion = (time.perf_counter() - t0) / len(rows)
    face = portrait.face
    size = face.crop.shape[0]
    h, w = portrait.image.shape[:2]
    canvas = portrait.image.astype(np.float32) / 255
    mask_crop = feather_mask(size)
    t_net = t_copy = t_paste = 0.0
    out = np.empty((h, w, 3), np.uint8)
    for start in range(0, len(rows), REFERENCE_WINDOW):
        window = torch.from_numpy(rows[start : start + REFERENCE_WINDOW]).to(spec.device)
        t = time.perf_counter()
        faces = renderer.render_faces(portrait, window)
        _sync(spec.device)
        t_net += time.perf_counter() - t
        t = time.perf_counter()
        host = faces.float().permute(0, 2, 3, 1).contiguous().cpu().numpy()  # fp32 crops to the host
        t_copy += time.perf_counter() - t
        t = time.perf_counter()
        s = host.shape[1]
        inv = face.inverse.astype(np.float64).copy()
        inv[:, :2] *= size / s
        for crop in host:
            warped = cv2.warpAffine(crop, inv, (w, h), flags=cv2.INTER_LINEAR)
            mask = cv2.warpAffine(cv2.resize(mask_crop, (s, s)), inv, (w, h), flags=cv2.INTER_LINEAR)[..., None]
            blended = mask * warped + (1 - mask) * canvas
            np.clip(blended * 255, 0, 255, out=blended)
            out[:] = blended.astype(np.uint8)
        t_paste += time.perf_counter() - t
    n = len(rows)
    total = t_motion + (t_net + t_copy + t_paste) / n
    return {"frames": n, "motion": t_motion, "render": t_net / n, "copy": t_copy / n, "paste_cpu": t_paste / n,
            "total": total, "first": REFERENCE_WINDOW * total, "lookahead": 0.0, "window": REFERENCE_WINDOW}


def live_latency_s(row: dict[str, float]) -> float:
    """Modelled live latency: a frame waits for its window to fill, the lookahead, then its window's compute."""
    fill = (row["window"] - 1) / 25.0
    return fill + row["lookahead"] + row["window"] * row["total"]


def main(args: argparse.Namespace) -> int:
    from skimage import data

    from core.engine.sources import syllables
    from core.pipeline import build_pipeline

    t0 = time.perf_counter()
    renderer, motion = build_pipeline(f"synthetic-{args.size}", args.motion, args.device, backend=args.backend,
                                      precision=args.precision)
    build_s = time.perf_counter() - t0
    spec = renderer.spec
    frames = args.frames or (100 if spec.device.type != "cpu" else (4 if args.size == "official" else 50))
    audio = syllables(frames * SAMPLES_PER_FRAME, 0.0).astype(np.float32)
    image = data.astronaut()
    print(f"engine benchmark: {args.size} sizes with SYNTHETIC WEIGHTS (random stand-ins; speed does not depend "
          f"on weight values); device {spec.describe()}; torch {torch.__version__}; {torch.get_num_threads()} "
          f"threads; backend {renderer.backend.name}; motion {motion.name}; portrait 512x512; {frames} frames of "
          "speech-like audio; "
          f"models built in {build_s:.1f} s")
    ours = run_ours(renderer, motion, image, audio, args.batch)
    ref = run_reference(renderer, motion, image, audio)
    cols = ("motion", "render", "copy", "paste_cpu", "total")
    print("ms per frame (render = networks + paste on the device for ours, networks only for reference; "
          "copy = device->host)")
    print(f"{'config':<34}" + "".join(f"{c:>11}" for c in cols) + f"{'fps':>8}{'copy %':>8}{'latency s':>11}")
    for name, row in ((f"ours (batch {args.batch}, device paste)", ours),
                      (f"reference-like ({REFERENCE_WINDOW}-frame windows)", ref)):
        share = 100 * (row["copy"] + row["paste_cpu"]) / row["total"]
        print(f"{name:<34}" + "".join(f"{row[c] * 1e3:>11.2f}" for c in cols)
              + f"{1 / row['total']:>8.2f}{share:>7.1f}%{live_latency_s(row):>11.2f}")
    print(f"ratios reference/ours: frame time x{ref['total'] / ours['total']:.2f}, "
          f"live latency x{live_latency_s(ref) / live_latency_s(ours):.1f}, "
          f"host copy+CPU paste {1e3 * (ref['copy'] + ref['paste_cpu']):.2f} vs "
          f"{1e3 * (ours['copy'] + ours['paste_cpu']):.2f} ms/frame")
    print(f"ours measured: {ours['frames']} frames, first frame {ours['first'] * 1e3:.0f} ms after start "
          f"(file source, all audio available); copy % = (host copy + CPU paste) / frame time; latency s = "
          f"modelled live latency (window fill + lookahead + window compute)")
    if spec.device.type == "cpu":
        print("note: on the CPU the device is the host, so our paste writes straight into the host frame "
              "(no copy exists); the reference config still pays the fp32 copy and the CPU paste")
    return 0
