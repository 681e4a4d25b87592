"""Dataset on disk: an append-only manifest, per-clip files, and a packed memory-mapped copy that training reads.

Layout of a dataset folder:

* `dataset.json`: what the features are (`feature_dim`, `features`, `audio_config`, `fps`), written once.
* `manifest/part-<i>-of-<n>.jsonl`: one JSON record per input, appended (one `write` of one line, then fsync)
  by the single process that owns shard i of n: `{"name", "file", "frames", "split", "video"}` for a clip,
  `{"name", "video", "skipped": reason}` for an input that cannot be used. Read = all parts merged, the last
  record of a name wins, so a re-run (or another shard) only ever appends. A torn last line (a killed run) is
  reported and ignored; that input is simply redone.
* `clips/<name>.npz`: one clip as preprocessing made it (`motion (T, 70)` float32 `core.layout` rows, `audio
  (T, D)` features at 25 fps, `envelope (T,)` frame RMS), written atomically by whichever worker made it.
* `packed/<split>/`: the clips of a split concatenated, sorted by name: `motion.npy (F, 70)`, `audio.npy (F, D)`,
  `envelope.npy (F,)` float32, `offsets.npy (clips + 1,)` int64 (clip i = rows offsets[i]:offsets[i+1]),
  `names.txt`; `packed/pack.json` has the counts, the train split's motion mean/std and the manifest part sizes
  it was made from (so a stale pack is detected with a few `stat` calls, without reading the manifest).

Why flat `.npy` per field + an offsets index: `np.load(mmap_mode="r")` maps them without reading, so a process's
memory does not grow with the dataset (the OS pages in only the windows a batch touches, and the page cache is
shared by every data-loader worker and rank on a machine); one file per field instead of one per clip keeps the
file count constant (no open/close per sample, no millions of inodes); it needs nothing beyond numpy, and the
result is byte-identical whatever order or number of workers produced the clips, since packing sorts by name.
WebDataset/tar shards would suit streaming from object storage, but random windows inside clips want random
access, which memory maps give for free.

Batches are a pure function of (seed, step): step s draws `global_batch` windows from a generator seeded with
(seed, s), uniformly over all valid window positions of the split (so long clips give proportionally more
windows): a cumulative count of valid starts per clip (`windows-<frames>.npy`, built once per window length and
memory-mapped) is searched with `np.searchsorted`, O(batch x log clips) per step. Rank r of w takes rows
r, r + w, ...; the data position to resume from is therefore the step number alone.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.atomic import atomic_path
from core.layout import MOTION_DIM
from core.timebase import SAMPLES_PER_FRAME

log = logging.getLogger(__name__)

DATASET = "dataset.json"
MANIFEST_DIR = "manifest"
CLIPS_DIR = "clips"
PACKED_DIR = "packed"
PACK_INFO = "pack.json"
DATASET_VERSION = 2
SPLITS = ("train", "val")
FIELDS = ("motion", "audio", "envelope")


class DataError(RuntimeError):
    """The dataset folder is missing, empty or inconsistent."""


def build_hint(root: Path) -> str:
    return (f"Build a dataset first: `python -m training synth --out {root}` (synthetic) or "
            f"`python -m training preprocess VIDEOS --out {root}`.")


# ---------------------------------------------------------------- writing

def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def save_shard(path: Path, motion: np.ndarray, audio: np.ndarray, envelope: np.ndarray) -> None:
    """Write one clip atomically (core.atomic)."""
    if not (len(motion) == len(audio) == len(envelope)):
        raise ValueError(f"clip {path.name}: motion {len(motion)}, audio {len(audio)}, envelope {len(envelope)} "
                         "frames differ")
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, motion=motion.astype(np.float32), audio=audio.astype(np.float32),
                 envelope=envelope.astype(np.float32))


def write_dataset_info(root: Path, info: dict) -> None:
    """`dataset.json`; an existing one must describe the same features (a folder holds one kind)."""
    path = Path(root) / DATASET
    info = {**info, "version": DATASET_VERSION}
    if path.is_file():
        old = read_dataset_info(root)
        keys = ("feature_dim", "features", "audio_config")
        if any(old.get(k) != info.get(k) for k in keys):
            diff = {k: (old.get(k), info.get(k)) for k in keys if old.get(k) != info.get(k)}
            raise DataError(f"{path} describes other features than this run makes ({diff}: existing, new). "
                            "Use a new --out folder for a different speech model or settings.")
        return
    write_json(path, info)


def part_path(root: Path, shard: int = 0, shards: int = 1) -> Path:
    return Path(root) / MANIFEST_DIR / f"part-{shard:03d}-of-{shards:03d}.jsonl"


class ManifestWriter:
    """Appends records to one manifest part; each record is one line written whole, then fsync'd."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._repair()

    def _repair(self) -> None:
        """A run killed mid-write leaves a torn last line: cut it so the next record starts on its own line."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropped a torn last record (%d bytes) left by an interrupted run", self.path,
                        len(data) - keep)
            with open(self.path, "r+b") as f:
                f.truncate(keep)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def write_manifest_part(root: Path, records: list[dict], shard: int = 0, shards: int = 1) -> None:
    """A whole part at once (synth): atomic, replaces the part."""
    path = part_path(root, shard, shards)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))


# ---------------------------------------------------------------- reading the manifest

def read_dataset_info(root: str | Path) -> dict:
    path = Path(root) / DATASET
    if not path.is_file():
        raise DataError(f"No {DATASET} in {root}. {build_hint(Path(root))}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}). Delete it and re-run preprocess.") from exc


def manifest_parts(root: Path) -> list[Path]:
    return sorted((Path(root) / MANIFEST_DIR).glob("part-*.jsonl"))


def read_records(root: str | Path) -> dict[str, dict]:
    """All parts merged: name -> its last record."""
    records: dict[str, dict] = {}
    for part in manifest_parts(Path(root)):
        lines = part.read_bytes().split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                if i == len(lines) - 1:  # no newline after it: torn by a killed writer
                    log.warning("%s: ignored a torn last record (an interrupted run); that input will be redone",
                                part)
                    continue
                raise DataError(f"{part} line {i + 1} is not a JSON record ({exc}). Remove that line; the input "
                                "it described will be processed again.") from exc
            records[rec["name"]] = rec
    return records


def read_manifest(root: str | Path) -> dict:
    """`dataset.json` + the merged records: {"items": [...], "skipped": [...], feature_dim, audio_config, ...}."""
    info = read_dataset_info(root)
    records = read_records(root)
    items = [r for r in records.values() if "skipped" not in r]
    skipped = [r for r in records.values() if "skipped" in r]
    return {**info, "items": sorted(items, key=lambda r: r["name"]), "skipped": skipped}


# ---------------------------------------------------------------- packing

def _manifest_sizes(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in manifest_parts(root)}


def pack(root: str | Path, progress: bool = False) -> dict:
    """Concatenate each split's clips (sorted by name) into memory-mappable arrays; returns pack.json's content.

    Memory: one clip at a time (arrays are written through `open_memmap`), plus the list of records."""
    root = Path(root)
    manifest = read_manifest(root)
    dim = int(manifest["feature_dim"])
    out = root / PACKED_DIR
    info = {"version": DATASET_VERSION, "feature_dim": dim, "manifest_sizes": _manifest_sizes(root), "splits": {}}
    for split in SPLITS:
        items = [r for r in manifest["items"] if r.get("split", "train") == split]
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("windows-*.npy"):  # window indexes of an older pack
            stale.unlink()
        frames = np.array([int(r["frames"]) for r in items], np.int64)
        offsets = np.concatenate(([0], np.cumsum(frames))).astype(np.int64)
        total = int(offsets[-1])
        info["splits"][split] = {"clips": len(items), "frames": total,
                                 "max_frames": int(frames.max()) if len(items) else 0}
        with atomic_path(folder / "offsets.npy", suffix=".npy") as tmp:
            np.save(tmp, offsets)
        with atomic_path(folder / "names.txt") as tmp:
            tmp.write_text("".join(r["name"] + "\n" for r in items))
        if not items:
            for name in FIELDS:
                (folder / f"{name}.npy").unlink(missing_ok=True)
            continue
        shapes = {"motion": (total, MOTION_DIM), "audio": (total, dim), "envelope": (total,)}
        s1 = np.zeros(MOTION_DIM, np.float64)
        s2 = np.zeros(MOTION_DIM, np.float64)
        with (atomic_path(folder / "motion.npy", suffix=".npy") as tm,
              atomic_path(folder / "audio.npy", suffix=".npy") as ta,
              atomic_path(folder / "envelope.npy", suffix=".npy") as te):
            arrays = {name: np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shapes[name])
                      for name, tmp in zip(FIELDS, (tm, ta, te))}
            for i, rec in enumerate(items):
                path = root / rec["file"]
                try:
                    with np.load(path) as z:
                        clip = {name: z[name] for name in FIELDS}
                except (OSError, ValueError, KeyError) as exc:
                    raise DataError(f"Cannot read clip {path} ({exc.__class__.__name__}: {exc}). Delete it and its "
                                    "manifest record's video will need preprocessing again.") from exc
                a, b = offsets[i], offsets[i + 1]
                for name in FIELDS:
                    if len(clip[name]) != b - a or clip[name].shape[1:] != shapes[name][1:]:
                        raise DataError(f"{path}: {name} has shape {clip[name].shape}, the manifest says "
                                        f"{b - a} frames of {shapes[name][1:]}. Re-run preprocess for it.")
                    arrays[name][a:b] = clip[name]
                m = clip["motion"].astype(np.float64)
                s1 += m.sum(0)
                s2 += (m * m).sum(0)
            for arr in arrays.values():
                arr.flush()
            del arrays
        if split == "train":
            mean = s1 / total
            var = np.maximum(s2 / total - mean * mean, 0.0)
            info["mean"], info["std"] = mean.tolist(), np.sqrt(var).tolist()
    write_json(out / PACK_INFO, info)  # last: the pack is complete once this exists
    if progress:
        print(f"packed {root}: " + ", ".join(f"{s} {v['clips']} clips / {v['frames']} frames"
                                             for s, v in info["splits"].items()))
    return info


def read_pack_info(root: str | Path) -> dict | None:
    """pack.json if the pack exists and matches the manifest, else None."""
    root = Path(root)
    path = root / PACKED_DIR / PACK_INFO
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    if info.get("version") != DATASET_VERSION or info.get("manifest_sizes") != _manifest_sizes(root):
        return None
    return info


def ensure_packed(root: str | Path, allow_pack: bool = True) -> dict:
    """The pack's info, packing first when it is missing or older than the manifest (if allowed)."""
    root = Path(root)
    read_dataset_info(root)  # a clear error for a folder that is not a dataset
    info = read_pack_info(root)
    if info is None:
        if not allow_pack:
            raise DataError(f"{root}/{PACKED_DIR} is missing or older than the manifest. Run "
                            f"`python -m training pack {root}` once (from one process), then start training.")
        print(f"packing {root} (memory-mapped arrays for training) ...", flush=True)
        info = pack(root, progress=True)
    return info


def motion_stats(info: dict, min_std: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """The train split's per-column mean and std (from the pack), std floored so constant columns stay finite."""
    if "mean" not in info:
        raise DataError("The dataset has no training clips to take normalisation statistics from.")
    return (np.asarray(info["mean"], np.float32),
            np.maximum(np.asarray(info["std"], np.float64), min_std).astype(np.float32))


# ---------------------------------------------------------------- reading packed clips

@dataclass
class Clip:
    name: str
    motion: np.ndarray  # (T, 70)
    audio: np.ndarray  # (T, D)
    envelope: np.ndarray  # (T,)


class PackedSplit:
    """One split of a pack, memory-mapped. Opening maps the files; nothing is read until a window is sliced.

    Picklable for data-loader workers: the maps are reopened in the worker, not copied."""

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root, self.split = Path(root), split
        self.folder = self.root / PACKED_DIR / split
        info = read_pack_info(self.root)
        if info is None:
            raise DataError(f"{self.root} is not packed (or the pack is stale). Run `python -m training pack "
                            f"{self.root}`.")
        s = info["splits"].get(split, {"clips": 0})
        self.n_clips, self.n_frames = int(s["clips"]), int(s.get("frames", 0))
        self.max_frames = int(s.get("max_frames", 0))
        self.feature_dim = int(info["feature_dim"])
        if self.n_clips == 0:
            counts = ", ".join(f"{k}: {v['clips']}" for k, v in info["splits"].items())
            raise DataError(f"{self.root} has no '{split}' clips (clips per split: {counts}).")
        self._maps: dict[str, np.ndarray] | None = None
        self._windows: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"], state["_windows"] = None, {}
        return state

    @property
    def maps(self) -> dict[str, np.ndarray]:
        if self._maps is None:
            self._maps = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r")
                          for name in (*FIELDS, "offsets")}
        return self._maps

    def __len__(self) -> int:
        return self.n_clips

    def names(self) -> list[str]:
        return (self.folder / "names.txt").read_text().splitlines()

    def clip(self, i: int, name: str = "") -> Clip:
        m = self.maps
        a, b = int(m["offsets"][i]), int(m["offsets"][i + 1])
        return Clip(name, m["motion"][a:b], m["audio"][a:b], m["envelope"][a:b])

    def windows(self, total: int) -> np.ndarray:
        """Cumulative count of valid window starts (windows of `total` frames) over clips, memory-mapped.

        Built once per length from the offsets in blocks (bounded memory) and cached next to the pack."""
        if total in self._windows:
            return self._windows[total]
        path = self.folder / f"windows-{total}.npy"
        if not path.is_file():
            offsets = self.maps["offsets"]
            try:
                with atomic_path(path, suffix=".npy") as tmp:
                    cum = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int64, shape=(self.n_clips,))
                    carry, block = 0, 1 << 20
                    for a in range(0, self.n_clips, block):
                        b = min(a + block, self.n_clips)
                        valid = np.maximum(0, np.diff(offsets[a: b + 1]) - total + 1)
                        cum[a:b] = carry + np.cumsum(valid)
                        carry = int(cum[b - 1])
                    cum.flush()
                    del cum
            except OSError as exc:  # read-only dataset folder: keep the index in memory (8 bytes per clip)
                log.warning("cannot cache %s (%s); keeping the window index in memory", path, exc)
                lens = np.diff(np.asarray(offsets))
                self._windows[total] = np.cumsum(np.maximum(0, lens - total + 1))
                return self._windows[total]
        self._windows[total] = np.load(path, mmap_mode="r")
        return self._windows[total]

    def locate(self, cum: np.ndarray, picks: np.ndarray) -> np.ndarray:
        """Window numbers (0 <= pick < cum[-1]) -> the global frame where each window starts."""
        clip = np.searchsorted(cum, picks, side="right")
        before = np.where(clip > 0, cum[np.maximum(clip - 1, 0)], 0)
        return self.maps["offsets"][clip] + (picks - before)


def load_clips(root: str | Path, split: str | None = None) -> list[Clip]:
    """The clips of `split` ('train', 'val', or None for both) as memory-mapped views (packing if needed)."""
    root = Path(root)
    ensure_packed(root)
    clips = []
    for s in (SPLITS if split is None else (split,)):
        try:
            part = PackedSplit(root, s)
        except DataError:
            if split is not None:
                raise
            continue
        clips += [part.clip(i, name) for i, name in enumerate(part.names())]
    if not clips:
        raise DataError(f"{root} has no clips. {build_hint(root)}")
    return clips


# ---------------------------------------------------------------- batches

@dataclass
class Batch:
    context: torch.Tensor  # (B, C, 70) normalised motion before the window
    target: torch.Tensor  # (B, N, 70) normalised motion to generate
    audio: torch.Tensor  # (B, C + N, D) features for context + window frames
    t: torch.Tensor  # (B,) diffusion step 1..steps
    noise: torch.Tensor  # (B, N, 70)
    drop: torch.Tensor  # (B,) bool: audio replaced by the null condition (classifier-free guidance)

    def pin_memory(self) -> Batch:
        return Batch(*(x.pin_memory() for x in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.context, self.target, self.audio, self.t, self.noise, self.drop

    def to(self, device: torch.device) -> Batch:
        return Batch(*(x.to(device, non_blocking=True) for x in self.tensors()))

    def rows(self, sl: slice) -> Batch:
        return Batch(*(x[sl] for x in self.tensors()))


class WindowSampler:
    """Windows of [context + N] frames, N drawn per step from `lengths`; a pure function of (seed, step).

    `global_batch` windows per step whatever the world size; rank r of w gets rows r, r + w, ... The diffusion
    inputs (t, noise, audio dropout) are drawn per global row too, so a run is the same computation on any
    number of processes (up to float summation order)."""

    def __init__(self, split: PackedSplit, mean: np.ndarray, std: np.ndarray, global_batch: int, context: int = 10,
                 lengths: tuple[int, ...] = (10, 25, 45, 65), seed: int = 0, rank: int = 0, world: int = 1,
                 shuffle_audio: bool = False, diffusion_steps: int = 50, cfg_drop: float = 0.0) -> None:
        need = context + min(lengths)
        if split.max_frames < need:
            raise DataError(f"No '{split.split}' clip in {split.root} has the {need} frames a window needs "
                            f"(longest: {split.max_frames}); use longer clips or shorter --lengths/--context.")
        if global_batch % world:
            raise DataError(f"--global-batch {global_batch} is not divisible by the {world} processes.")
        self.split = split
        self.lengths = tuple(n for n in lengths if context + n <= split.max_frames)
        self.max_len = context + max(self.lengths)
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.global_batch, self.context, self.seed = global_batch, context, seed
        self.rank, self.world = rank, world
        self.shuffle_audio = shuffle_audio
        self.diffusion_steps, self.cfg_drop = diffusion_steps, cfg_drop

    def starts(self, step: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(N, global start frames of the windows (G,), of their audio (G,)): the per-step sampling work."""
        rng = np.random.default_rng([self.seed, step])
        n = int(rng.choice(self.lengths))
        cum = self.split.windows(self.context + n)
        count = int(cum[-1])
        starts = self.split.locate(cum, rng.integers(0, count, size=self.global_batch))
        # control runs: audio from another random window, so motion carries no information about it
        a_starts = self.split.locate(cum, rng.integers(0, count, size=self.global_batch)) if self.shuffle_audio \
            else starts
        return n, starts, a_starts

    def batch(self, step: int) -> Batch:
        n, starts, a_starts = self.starts(step)
        total = self.context + n
        maps = self.split.maps
        rows = range(self.rank, self.global_batch, self.world)
        motion = np.stack([maps["motion"][starts[j]: starts[j] + total] for j in rows])
        audio = np.stack([maps["audio"][a_starts[j]: a_starts[j] + total] for j in rows])
        m = torch.from_numpy((motion - self.mean) / self.std)
        t, noise, drop = self.diffusion_draws(step, n)
        sl = slice(self.rank, None, self.world)
        return Batch(m[:, : self.context], m[:, self.context:], torch.from_numpy(audio), t[sl], noise[sl], drop[sl])

    def diffusion_draws(self, step: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """t (1..steps), noise and the audio-dropout mask for every global row of the step."""
        g = torch.Generator()
        g.manual_seed(int(np.random.SeedSequence([self.seed, step, 7]).generate_state(1)[0]))
        b = self.global_batch
        t = torch.randint(1, self.diffusion_steps + 1, (b,), generator=g)
        noise = torch.randn((b, n, MOTION_DIM), generator=g)
        drop = torch.rand(b, generator=g) < self.cfg_drop
        return t, noise, drop


class StepBatches(torch.utils.data.Dataset):
    """Item s = this rank's batch of step s; a DataLoader over `range(start, steps)` prefetches it in workers."""

    def __init__(self, sampler: WindowSampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, step: int) -> Batch:
        return self.sampler.batch(step)


def batch_loader(sampler: WindowSampler, start: int, stop: int, workers: int, prefetch: int,
                 pin: bool) -> torch.utils.data.DataLoader:
    """Batches of steps start..stop-1, made `prefetch` steps ahead by `workers` processes (0: in this one)."""
    return torch.utils.data.DataLoader(
        StepBatches(sampler), batch_size=None, sampler=range(start, stop), num_workers=workers,
        prefetch_factor=prefetch if workers > 0 else None, pin_memory=pin,
        worker_init_fn=_one_thread if workers > 0 else None,
        generator=torch.Generator().manual_seed(0))  # else the loader draws its base seed from the global RNG


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # slicing and stacking need no intra-op threads; the trainer keeps the cores


def frame_rms(samples: np.ndarray, n_frames: int | None = None, spf: int = SAMPLES_PER_FRAME) -> np.ndarray:
    """RMS of each 25 fps frame's own samples [640 k, 640 (k + 1)): the speech envelope, one value per frame."""
    n = -(-len(samples) // spf) if n_frames is None else n_frames
    x = np.zeros(n * spf, np.float32)
    m = min(len(samples), n * spf)
    x[:m] = samples[:m]
    return np.sqrt(np.mean(x.reshape(n, spf).astype(np.float64) ** 2, axis=1)).astype(np.float32)
