"""`python -m training distill`: a streaming DiT that imitates JoyVASA, made from speech recordings alone.

Why: training the DiT on its own needs a talking-head video corpus; JoyVASA's published generator already maps
speech to LivePortrait motion, so its output on any speech is a training target, and speech is what every user
has. Steps:

1. targets: every audio file under the --audio folders is run through the JoyVASA motion source offline (its
   loader, `core.motion.joyvasa.load_joyvasa`, reads the installed published files or any stand-in laid out the
   same, e.g. the parity kit's), giving 70-column relative motion rows at 25 fps (plain relative lips:
   `JoyVASAConfig.absolute_lips` False, since the DiT's rows carry no absolute-lip weight);
2. features: the student's speech features are computed as `synth`/`preprocess` compute them (the app's streaming
   extractor, long hops), with the installed wav2vec2 or the stand-in speech model (`--synthetic-weights`);
3. a dataset folder OUT/data (the usual format: shards, manifest, packed arrays; a re-run skips finished files);
4. training of a streaming DiT on it (`training.train`, the `STUDENT` design by default: causal, guidance folded
   in, `frame_audio`, which lifted the held-out correlation most, docs/TRAINING.md), exported as
   OUT/model.safetensors; `python -m training install OUT/model.safetensors` puts it where `--motion dit` looks.

`student_vs_teacher` is the imitation measure (docs/TRAINING.md): per-frame correlation of the student's and the
teacher's motion on held-out speech, over all columns scaled by the dataset's per-column std.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from core.timebase import FPS

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac")
TEACHERS = ("joyvasa",)
# the DiT design distillation trains by default: causal, guidance folded in, each frame fed its own audio
STUDENT = {"kind": "streaming", "guidance_embed": True, "frame_audio": True}


@dataclasses.dataclass
class TeacherConfig:
    """How JoyVASA runs offline for targets: its native 100-frame windows and guidance, fewer steps (its
    sampler is stochastic but on speech its output barely depends on the seed; steps cost time per hour)."""

    window: int = 100
    steps: int = 10
    cfg_scale: float = 2.8
    seed: int = 0


def audio_files(folders: list[str | Path]) -> list[Path]:
    files = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.append(folder)
            continue
        if not folder.is_dir():
            raise FileNotFoundError(f"--audio {folder}: no such folder. Pass folders of speech recordings "
                                    f"({', '.join(AUDIO_EXTENSIONS)}).")
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {', '.join(map(str, folders))}.")
    return files


def load_teacher(weights_root: str | Path | None, device: str = "cpu"):
    """JoyVASA from a weights root (the app's when None): the published files or a stand-in of their layout."""
    from core.motion.joyvasa.model import load_joyvasa
    from core.weights import WeightsRegistry

    return load_joyvasa(WeightsRegistry(weights_root).root, device)


def teacher_motion(jv, samples: np.ndarray, cfg: TeacherConfig, device: str = "cpu") -> np.ndarray:
    """(ceil(len / 640), 70) JoyVASA motion rows of one recording, relative to its first (silent) frame."""
    from core.motion.joyvasa.source import JoyVASAConfig, JoyVASAMotionSource
    from core.motion.source import MotionSettings

    config = JoyVASAConfig(window=cfg.window, steps=cfg.steps, cfg_scale=cfg.cfg_scale, audio_context_frames=0,
                           absolute_lips=False)
    source = JoyVASAMotionSource(jv, MotionSettings(seed=cfg.seed), config, device)
    source.push_audio(samples)
    return np.concatenate((source.pull(), source.flush())).astype(np.float32)


def clip_name(path: Path) -> str:
    return f"{path.stem[:40]}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"


def is_val(name: str, val_fraction: float) -> bool:
    """A stable split: a file's hash decides, so adding recordings moves no others."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < val_fraction


def build_dataset(files: list[Path], out: Path, jv, extractor, teacher: TeacherConfig, val_fraction: float = 0.1,
                  audio_hop: int = 25, device: str = "cpu", progress: bool = True) -> Path:
    """Teacher targets + student features for every file, as a packed dataset in `out`."""
    from tqdm import tqdm

    from core.audio.io import load_audio
    from training.data import CLIPS_DIR, frame_rms, pack, save_shard, write_dataset_info, write_manifest_part

    out.mkdir(parents=True, exist_ok=True)
    items = []
    for path in tqdm(files, desc="teacher", disable=not progress):
        name = clip_name(path)
        shard = out / CLIPS_DIR / f"{name}.npz"
        if shard.is_file():
            with np.load(shard) as z:
                frames = len(z["motion"])
        else:
            samples = load_audio(path)
            motion = teacher_motion(jv, samples, teacher, device)
            stream = extractor.stream(hop_frames=audio_hop)
            feats = torch.cat((stream.push(samples), stream.flush())).numpy()
            envelope = frame_rms(samples)
            n = min(len(motion), len(feats), len(envelope))
            save_shard(shard, motion[:n], feats[:n], envelope[:n])
            frames = n
        items.append({"name": name, "file": f"{CLIPS_DIR}/{name}.npz", "frames": frames, "source": str(path),
                      "split": "val" if is_val(name, val_fraction) else "train"})
    info = {"feature_dim": extractor.dim, "fps": FPS, "features": "wav2vec2-stream",
            "audio_config": dataclasses.asdict(extractor.config),
            "teacher": {"name": "joyvasa", **dataclasses.asdict(teacher)}}
    write_dataset_info(out, info)
    write_manifest_part(out, items)
    pack(out)
    return out


@torch.no_grad()
def student_motion(model, stats_mean, stats_std, audio: np.ndarray, steps: int = 4, seed: int = 0) -> np.ndarray:
    """The streaming student on one clip's features, from neutral motion, as live -> (T, 70) rows."""
    from core.motion.diffusion import CosineSchedule
    from core.motion.rollout import rollout

    c = model.config.context
    feats = torch.from_numpy(np.asarray(audio, np.float32))
    start = torch.from_numpy((np.zeros((c, len(stats_mean)), np.float32) - stats_mean) / stats_std).float()
    feats = torch.cat((feats[:1].expand(c, -1), feats))  # the neutral start "hears" the clip's first frame
    out = rollout(model, CosineSchedule(model.config.diffusion_steps), start, feats, model.config.chunk, steps, 1.0,
                  torch.Generator().manual_seed(seed))
    return out[c:].numpy() * stats_std + stats_mean


def student_vs_teacher(student: np.ndarray, teacher: np.ndarray, std: np.ndarray) -> float:
    """Per-frame correlation over all columns: each column centred over the clip and scaled by the dataset's
    std (so every column counts by its typical motion, not its units), then one Pearson correlation."""
    n = min(len(student), len(teacher))
    s = (student[:n] - student[:n].mean(0)) / std
    t = (teacher[:n] - teacher[:n].mean(0)) / std
    return float((s * t).sum() / np.sqrt((s * s).sum() * (t * t).sum() + 1e-12))


def student_design(model: dict) -> dict:
    """`--model` overrides merged over `STUDENT`; a windowed student (kind "windowed") has no per-frame audio input,
    so it does not inherit `frame_audio` unless asked for (which DiTConfig then refuses with a clear message)."""
    student = {**STUDENT, **model}
    if student["kind"] != "streaming" and "frame_audio" not in model:
        del student["frame_audio"]
    return student


# ---------------------------------------------------------------- CLI

def add_arguments(p: argparse.ArgumentParser) -> None:
    from training.train import add_arguments as add_train_arguments

    d = TeacherConfig()
    p.add_argument("--teacher", default="joyvasa", choices=TEACHERS, help="the model to imitate")
    p.add_argument("--audio", nargs="+", required=True, help="folders (or files) of speech recordings, no video")
    p.add_argument("--teacher-weights", default=None, help="weights folder holding JoyVASA (default: the app's; "
                   "the parity kit's stand-in written with its make_checkpoint.py --out DIR works too)")
    p.add_argument("--teacher-steps", type=int, default=d.steps, help="JoyVASA sampling steps per window")
    p.add_argument("--teacher-window", type=int, default=d.window, help="JoyVASA frames per window (native: 100)")
    p.add_argument("--teacher-cfg", type=float, default=d.cfg_scale, help="JoyVASA guidance scale (native: 2.8)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of recordings held out for validation")
    p.add_argument("--synthetic-weights", action="store_true",
                   help="student features from the stand-in speech model instead of the installed wav2vec2")
    p.add_argument("--speech-weights", default=None, help="weights folder with wav2vec2 (default: the app's)")
    p.add_argument("--audio-hop", type=int, default=25, help="frames per speech-model encode (as preprocess)")
    add_train_arguments(p)
    for action in p._actions:  # the dataset is OUT/data, made here
        if action.dest == "data":
            action.required, action.default = False, ""
            action.help = "dataset folder to write (default: OUT/data)"


def main(args: argparse.Namespace) -> int:
    import json

    from core.audio.features import STAND_IN_MODEL, AudioFeatureExtractor, FeatureModelError
    from core.motion.joyvasa.files import JoyVASACheckpointError
    from core.weights import MissingWeightsError, WeightsRegistry
    from training.data import DataError
    from training.train import TrainError, config_from_args, train

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = Path(args.data or out / "data")
    try:
        files = audio_files(args.audio)
        jv = load_teacher(args.teacher_weights)
        if args.synthetic_weights:
            extractor = AudioFeatureExtractor.from_pretrained(STAND_IN_MODEL)
        else:
            extractor = AudioFeatureExtractor.from_pretrained(
                WeightsRegistry(args.speech_weights).path("wav2vec2") / "wav2vec2-base-960h")
        teacher = TeacherConfig(args.teacher_window, args.teacher_steps, args.teacher_cfg, args.seed)
        build_dataset(files, data, jv, extractor, teacher, args.val_fraction, args.audio_hop)
        del jv
        args.data = str(data)
        model = json.loads(args.model) if isinstance(args.model, str) else dict(args.model)
        args.model = json.dumps(student_design(model))
        cfg = config_from_args(args)
        result = train(cfg, stop_after=args.stop_after)
    except (FileNotFoundError, MissingWeightsError, JoyVASACheckpointError, FeatureModelError, DataError,
            TrainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"distilled {len(files)} recordings into {out} (step {result['step']}); install it with "
          f"`python -m training install {Path(cfg.export or out / 'model.safetensors')}`")
    return 0
