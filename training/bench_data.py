"""`python -m training bench-data`: the data pipeline's per-step cost and memory at two dataset sizes.

For each size it writes a pack of N synthetic clip records (random lengths; the arrays are sparse files, so a
100k-clip pack with 768-d features costs no disk space), then, in a fresh process, draws `steps` batches with
`training.data.WindowSampler` exactly as training does and reports the median time of the sampling itself
(choosing the windows: `WindowSampler.starts`), of a whole batch (slicing + normalising + diffusion noise), and
the process's memory: anonymous (heap; what must not grow with the dataset), file-backed (pages of the memory
maps touched, shared with other processes and reclaimable) and the peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from core.layout import MOTION_DIM


def make_pack(root: Path, clips: int, dim: int, seed: int = 0, min_len: int = 40, max_len: int = 400) -> None:
    """A packed 'train' split of `clips` records whose arrays are sparse (zeros that occupy no disk)."""
    from training.data import DATASET_VERSION, PACK_INFO, PACKED_DIR, write_json

    folder = root / PACKED_DIR / "train"
    folder.mkdir(parents=True, exist_ok=True)
    lengths = np.random.default_rng(seed).integers(min_len, max_len + 1, clips)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    np.save(folder / "offsets.npy", offsets)
    total = int(offsets[-1])
    for name, shape in (("motion", (total, MOTION_DIM)), ("audio", (total, dim)), ("envelope", (total,))):
        arr = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)
        del arr  # never written: the file stays sparse
    (folder / "names.txt").touch()
    write_json(root / "dataset.json", {"version": DATASET_VERSION, "feature_dim": dim, "features": "bench"})
    write_json(root / PACKED_DIR / PACK_INFO, {
        "version": DATASET_VERSION, "feature_dim": dim, "manifest_sizes": {},
        "splits": {"train": {"clips": clips, "frames": total, "max_frames": int(lengths.max())}},
        "mean": [0.0] * MOTION_DIM, "std": [1.0] * MOTION_DIM})


def memory() -> dict[str, float]:
    """MiB from /proc/self/status: RssAnon, RssFile, VmHWM (peak resident)."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def measure(root: Path, steps: int, global_batch: int) -> dict:
    """Runs in a fresh process: time per step and memory after `steps` batches."""
    import torch

    from training.data import PackedSplit, WindowSampler, motion_stats, read_pack_info

    torch.set_num_threads(1)
    split = PackedSplit(root, "train")
    mean, std = motion_stats(read_pack_info(root))
    sampler = WindowSampler(split, mean, std, global_batch, seed=1, diffusion_steps=50)
    for length in sampler.lengths:  # build the window indexes once, as the first steps of a run do
        split.windows(sampler.context + length)
    base = memory()
    pick, whole = [], []
    for step in range(steps):
        t0 = time.perf_counter()
        sampler.starts(step)
        t1 = time.perf_counter()
        sampler.batch(step)
        t2 = time.perf_counter()
        pick.append(t1 - t0)
        whole.append(t2 - t1)
    mem = memory()
    return {"clips": len(split), "frames": split.n_frames, "sample_ms": 1000 * float(np.median(pick)),
            "batch_ms": 1000 * float(np.median(whole)), "anon_mib": mem["RssAnon"], "file_mib": mem["RssFile"],
            "peak_mib": mem["VmHWM"], "anon_before_mib": base["RssAnon"]}


def run(sizes: list[int], dim: int, steps: int, global_batch: int, folder: Path) -> list[dict]:
    results = []
    for n in sizes:
        root = folder / f"bench-{n}"
        if not (root / "packed" / "pack.json").is_file():
            make_pack(root, n, dim)
        proc = subprocess.run([sys.executable, "-m", "training.bench_data", "--measure", str(root), "--steps",
                               str(steps), "--global-batch", str(global_batch)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench process failed:\n{proc.stderr[-2000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="10000,100000", help="clip counts to compare, comma separated")
    p.add_argument("--dim", type=int, default=768, help="audio feature size (768: wav2vec2-base)")
    p.add_argument("--steps", type=int, default=100, help="batches drawn per size")
    p.add_argument("--global-batch", type=int, default=64, help="windows per step")
    p.add_argument("--folder", default="/tmp/headcast-bench-data", help="where the sparse packs are written")


def main(args: argparse.Namespace) -> int:
    sizes = [int(x) for x in args.sizes.split(",")]
    results = run(sizes, args.dim, args.steps, args.global_batch, Path(args.folder))
    print(f"{'clips':>9} {'frames':>11} {'sample ms/step':>15} {'batch ms/step':>14} {'anon MiB':>9} "
          f"{'file MiB':>9} {'peak MiB':>9}")
    for r in results:
        print(f"{r['clips']:>9} {r['frames']:>11} {r['sample_ms']:>15.3f} {r['batch_ms']:>14.2f} {r['anon_mib']:>9.1f} "
              f"{r['file_mib']:>9.1f} {r['peak_mib']:>9.1f}")
    a, b = results[0], results[-1]
    print(f"x{b['clips'] / a['clips']:.0f} clips: sampling x{b['sample_ms'] / a['sample_ms']:.2f} time, anonymous "
          f"memory {b['anon_mib'] - a['anon_mib']:+.1f} MiB, global batch {args.global_batch}, audio dim {args.dim}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--global-batch", type=int, default=64)
    ns = parser.parse_args()
    print(json.dumps(measure(Path(ns.measure), ns.steps, ns.global_batch)))
