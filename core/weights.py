"""The model weights Headcast uses: where they come from, where they live, and whether they are intact.

`python -m core weights list | download [MODEL ...] | import DIR | verify`

Files live under `platformdirs.user_data_dir("headcast")/weights` (override: HEADCAST_WEIGHTS_DIR), laid out as
the upstream repositories are, so a folder downloaded by hand can be imported as is.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.atomic import atomic_path, commit, set_aside


@dataclass(frozen=True)
class WeightFile:
    repo: str  # Hugging Face repository
    filename: str  # path inside the repository
    local: str  # path under the weights root
    sha256: str | None = None  # None where no trustworthy digest is known
    size: int | None = None  # bytes, where known


@dataclass(frozen=True)
class Model:
    name: str
    description: str
    files: tuple[WeightFile, ...]
    optional: bool = False


def _lp(path: str) -> WeightFile:
    return WeightFile("KwaiVGI/LivePortrait", path, path)


MODELS: dict[str, Model] = {m.name: m for m in (
    Model("liveportrait", "LivePortrait renderer (appearance, motion, warping, SPADE, stitching/retargeting)", (
        _lp("liveportrait/base_models/appearance_feature_extractor.pth"),
        _lp("liveportrait/base_models/motion_extractor.pth"),
        _lp("liveportrait/base_models/warping_module.pth"),
        _lp("liveportrait/base_models/spade_generator.pth"),
        _lp("liveportrait/retargeting_models/stitching_retargeting_module.pth"),
    )),
    Model("face", "LivePortrait's face detector and landmarks (better crops; OpenCV is the fallback)", (
        _lp("insightface/models/buffalo_l/det_10g.onnx"),
        _lp("insightface/models/buffalo_l/2d106det.onnx"),
        _lp("liveportrait/landmark.onnx"),
    ), optional=True),
    Model("wav2vec2", "speech features for the DiT motion model (facebook/wav2vec2-base-960h)", tuple(
        WeightFile("facebook/wav2vec2-base-960h", f, f"wav2vec2-base-960h/{f}")
        for f in ("config.json", "preprocessor_config.json", "model.safetensors")
    ), optional=True),
    Model("joyvasa", "JoyVASA's published speech-to-motion generator (MIT code; see the model card)", (
        WeightFile("jdh-algo/JoyVASA", "motion_generator/motion_generator_hubert_chinese.pt",
                   "JoyVASA/motion_generator/motion_generator_hubert_chinese.pt",
                   "9dd869329725caedf5f0c13dd383abec1e385f566d8afe2047b141f604844e80"),
        WeightFile("jdh-algo/JoyVASA", "motion_template/motion_template.pkl",
                   "JoyVASA/motion_template/motion_template.pkl",
                   "294ce67350b18031b375361756f654c76d5e14c8f1e319cf9ed07f759ef81a98"),
    ), optional=True),
)}
REQUIRED = [m.name for m in MODELS.values() if not m.optional]


class MissingWeightsError(FileNotFoundError):
    """A weight file is not installed; the message names it and the command that fixes it."""


class WeightsDownloadError(RuntimeError):
    """The hub could not be reached or refused the file; the message says why in plain words."""


class WeightsChecksumError(ValueError):
    """A weight file is not the published file (damaged or truncated download)."""


class DownloadCancelled(Exception):
    """The user cancelled a download; nothing was installed."""


DOWNLOAD_HINT = ("Check the internet connection and try again, or copy the weight files from a computer that has "
                 "them and import the folder with `python -m core weights import DIR` (in the app: File > Download "
                 "or import weights…).")
CHUNK = 1 << 20
TIMEOUT_S = 15.0  # per connection attempt and per read; no retries: an offline machine fails at once


def fix_command(models: list[str] | None = None) -> str:
    """The one sentence that says how to install `models` (all required ones when empty): download where there
    is internet, import from a folder where there is not (the offline user's only way)."""
    names = " ".join(models or [])
    return (f"Run `python -m core weights download{' ' + names if names else ''}` (needs internet), or copy the "
            "files from a computer that has them and run `python -m core weights import DIR`.")


def default_root() -> Path:
    env = os.environ.get("HEADCAST_WEIGHTS_DIR")
    if env:
        return Path(env)
    import platformdirs  # imported here: the GPU check's machine has no platformdirs and sets the variable

    return Path(platformdirs.user_data_dir("headcast")) / "weights"


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hub_url(f: WeightFile) -> str:
    """The file's download address on the Hugging Face hub (HF_ENDPOINT overrides the host, as in huggingface_hub)."""
    from urllib.parse import quote

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{f.repo}/resolve/main/{quote(f.filename)}"


def _network_reason(exc: BaseException, url: str) -> str:
    """One plain sentence for a failed transfer (never the raw `URLError: <urlopen error [Errno -2] ...>`)."""
    import socket
    import ssl
    import urllib.error
    from urllib.parse import urlparse

    host = urlparse(url).hostname or url
    if isinstance(exc, urllib.error.HTTPError):
        return f"{host} answered HTTP {exc.code} ({exc.reason})"
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.gaierror):
        return f"cannot find {host}: this computer seems to be offline (or DNS is blocked)"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"{host} did not answer within {TIMEOUT_S:.0f} s"
    if isinstance(reason, ConnectionRefusedError):
        return f"{host} refused the connection"
    if isinstance(reason, ssl.SSLError):
        return f"the secure connection to {host} failed (a proxy, or a wrong system clock?)"
    if isinstance(reason, OSError) and reason.strerror:
        return f"{host}: {reason.strerror}"
    return f"{host}: {type(reason).__name__}"


def fetch_files(files, staging: Path, progress: Callable[[int, int, str], None] | None = None,
                cancel: threading.Event | None = None, url_for: Callable[[WeightFile], str] = hub_url) -> None:
    """Stream `files` into `staging/<local>` in chunks: `progress(done_bytes, total_bytes, local)` after each
    chunk, `cancel` checked between chunks (raises DownloadCancelled). One attempt per file, no retries: a
    machine without internet gets WeightsDownloadError in well under a second."""
    import urllib.request

    if url_for is hub_url and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise WeightsDownloadError(f"Downloads are switched off here (HF_HUB_OFFLINE is set). {DOWNLOAD_HINT}")
    total = sum(f.size or 0 for f in files)
    done = 0
    for f in files:
        url = url_for(f)
        target = staging / f.local
        target.parent.mkdir(parents=True, exist_ok=True)
        request = urllib.request.Request(url, headers={"User-Agent": "headcast"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(target, "wb") as out:
                if not f.size:
                    total += int(response.headers.get("Content-Length") or 0)
                while True:
                    if cancel is not None and cancel.is_set():
                        raise DownloadCancelled()
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, max(total, done), f.local)
        except OSError as exc:  # URLError, HTTPError, timeouts, resets
            raise WeightsDownloadError(f"Cannot download {f.local}: {_network_reason(exc, url)}. "
                                       f"{DOWNLOAD_HINT}") from None


# ---- structural checks: what a file must look like, read without executing anything from it --------------
def _safetensors_problem(path: Path) -> str | None:
    """The header is JSON and every tensor's bytes lie inside the file (a truncated download fails this)."""
    import json
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "too short for a safetensors file"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return "truncated (the header runs past the end of the file)"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return "the safetensors header is not valid JSON"
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    if not ends:
        return "holds no tensors"
    if 8 + n + max(ends) > size:
        return f"truncated ({size} bytes; the tensors need {8 + n + max(ends)})"
    return None


def quick_problem(path: Path) -> str | None:
    """What is visibly wrong with an installed file, from its end and header only (milliseconds); None: looks
    complete. Used by the app's dialog and before downloads (a damaged file is fetched again)."""
    import json
    import zipfile

    if path.stat().st_size == 0:
        return "empty file"
    suffix = path.suffix.lower()
    if suffix in (".pth", ".pt"):  # torch.save's zip container: a cut-off file has no central directory
        return None if zipfile.is_zipfile(path) else "not a complete PyTorch checkpoint (truncated download?)"
    if suffix == ".safetensors":
        return _safetensors_problem(path)
    if suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return "not valid JSON (truncated download?)"
    return None


def deep_problem(f: WeightFile, path: Path) -> str | None:
    """Full structural check: LivePortrait checkpoints are read with weights_only (no code runs) and every key and
    shape compared with the official networks; ONNX models must load in ONNX Runtime; sha256 where published."""
    problem = quick_problem(path)
    if problem:
        return problem
    if f.sha256 is not None and sha256_of(path) != f.sha256:
        return "sha256 differs from the published file (damaged or a different version)"
    if f.local.startswith("liveportrait/") and path.suffix == ".pth":
        from core.liveportrait import CheckpointError, verify_checkpoint

        try:
            verify_checkpoint(path, f.local)
        except CheckpointError as exc:
            text = str(exc).replace(f"Cannot read LivePortrait checkpoint {path}: ", "")
            return text.replace(f"{path}", "the file").split(". Re-download")[0]
    elif path.suffix == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            return None  # nothing to check with; the face cropper reports a broken file when it loads it
        try:
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception:
            return "ONNX Runtime cannot load it (damaged or truncated)"
    return None


class WeightsRegistry:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def path(self, model: str, local: str | None = None) -> Path:
        """The installed path of a model's file (or of its folder when `local` is None); raises if missing."""
        entry = MODELS[model]
        files = [f for f in entry.files if local is None or f.local == local]
        for f in files:
            if not (self.root / f.local).is_file():
                raise MissingWeightsError(f"Missing {model} weights: {self.root / f.local}. {fix_command([model])}")
        return self.root / files[0].local if local is not None else self.root

    def installed(self, model: str) -> bool:
        return all((self.root / f.local).is_file() for f in MODELS[model].files)

    def check(self, f: WeightFile, deep: bool = False) -> tuple[str, str]:
        """('ok' | 'missing' | 'damaged', reason). deep=False: quick_problem only (for the GUI thread)."""
        path = self.root / f.local
        if not path.is_file():
            return "missing", "not installed"
        problem = deep_problem(f, path) if deep else quick_problem(path)
        return ("damaged", problem) if problem else ("ok", "")

    def needed(self, models=REQUIRED, deep: bool = False) -> list[WeightFile]:
        """Files of `models` that are missing or damaged (deep: the full structural check): what to fetch."""
        return [f for m in models for f in MODELS[m].files if self.check(f, deep)[0] != "ok"]

    def problems(self, models=REQUIRED) -> list[str]:
        """'local: missing' / 'local: damaged (reason)' for the files of `models` that need fetching."""
        rows = []
        for f in self.needed(models):
            state, reason = self.check(f)
            rows.append(f"{f.local}: {'not installed' if state == 'missing' else 'damaged (' + reason + ')'}")
        return rows

    def verify_file(self, f: WeightFile, path: Path | None = None) -> bool | None:
        """True/False when a digest is known, None when only presence can be checked."""
        path = path or self.root / f.local
        if f.sha256 is None:
            return None
        return sha256_of(path) == f.sha256

    def _install(self, f: WeightFile, source: Path, move: bool, keep_bad: bool = True) -> None:
        """Verify `source`, then put it in place atomically; a bad file is quarantined, never installed."""
        ok = self.verify_file(f, source)
        if ok is False:
            bad = set_aside(source) if move and keep_bad else None
            raise WeightsChecksumError(
                f"{f.local}: sha256 does not match the published file (damaged or truncated)."
                + (f" Kept aside as {bad}." if bad else "") + " Download it again."
            )
        if move:  # a staged download on the same disk: the rename is the atomic step
            (self.root / f.local).parent.mkdir(parents=True, exist_ok=True)
            commit(source, self.root / f.local)
        else:
            with atomic_path(self.root / f.local) as tmp:
                shutil.copyfile(source, tmp)

    def download(self, models: str | list[str] = REQUIRED, progress: Callable[[int, int, str], None] | None = None,
                 cancel: threading.Event | None = None, url_for: Callable[[WeightFile], str] = hub_url) -> list[str]:
        """Fetch what `models` still need into a private staging folder beside the weights (same disk: the final
        moves are renames), then install each file through the checksum check. Cancel or failure removes the
        staging folder: nothing half-installed is ever left. Installed files are checked in depth first, so a
        file of the wrong shape is replaced too. Returns the installed local paths."""
        files = self.needed([models] if isinstance(models, str) else models, deep=True)
        if not files:
            return []
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            fetch_files(files, staging, progress, cancel, url_for)
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled()
            for f in files:
                self._install(f, staging / f.local, move=True, keep_bad=False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return [f.local for f in files]

    def import_dir(self, source: str | Path) -> list[str]:
        """Copy every known file found in `source` (upstream layout, or the repo root itself) into place."""
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"Import folder not found: {source}")
        done = []
        for model in MODELS.values():
            for f in model.files:
                for candidate in (source / f.local, source / f.filename, source / "pretrained_weights" / f.local):
                    if candidate.is_file():
                        self._install(f, candidate, move=False)
                        done.append(f.local)
                        break
        if not done:
            raise MissingWeightsError(f"No known weight files in {source} (expected e.g. "
                                      f"{MODELS['liveportrait'].files[0].local}).")
        return done

    def verify(self) -> list[tuple[str, str, str]]:
        """[(local path, 'ok' | 'missing' | 'damaged', reason)] for every file, checked in depth (deep_problem)."""
        return [(f.local, *self.check(f, deep=True)) for model in MODELS.values() for f in model.files]


FILE_STATE_WORDS = {"ok": "ok", "missing": "missing", "damaged": "DAMAGED"}


def model_state(file_states: list[str]) -> str:
    """A family as `weights list` shows it: installed only when every file is there and intact."""
    if "damaged" in file_states:
        return "damaged"
    if all(s == "missing" for s in file_states):
        return "missing"
    return "incomplete" if "missing" in file_states else "installed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="weights folder (default: the user data dir, or HEADCAST_WEIGHTS_DIR)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="what each model needs and what is installed")
    p = sub.add_parser("download", help="download from Hugging Face (default: the required models)")
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"any of: {', '.join(MODELS)}")
    p = sub.add_parser("import", help="copy weight files from a folder (e.g. a LivePortrait pretrained_weights/)")
    p.add_argument("dir", metavar="DIR", help="a folder holding the weight files, in the upstream layout (e.g. "
                   "LivePortrait's pretrained_weights/) or flat; files found are checked, then copied into place")
    sub.add_parser("verify", help="check every installed file: readable without running code, every key and shape "
                   "as the official model has it, sha256 where published")


def _print_progress(done: int, total: int, name: str) -> None:
    print(f"\r{name}: {done / 2**20:.0f} / {total / 2**20:.0f} MB", end="", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    reg = WeightsRegistry(args.root)
    try:
        if args.action == "list":
            print(f"weights folder: {reg.root}")
            broken = []
            for m in MODELS.values():
                checks = [reg.check(f) for f in m.files]  # quick checks: presence and file integrity
                state = model_state([s for s, _ in checks])
                if state != "installed" and (state != "missing" or not m.optional):
                    broken.append(m.name)
                print(f"{m.name:<13}{'(optional)' if m.optional else '(required)':<12}{state:<11}{m.description}")
                for f, (file_state, reason) in zip(m.files, checks):
                    why = f"  ({reason})" if file_state == "damaged" else ""
                    print(f"    {FILE_STATE_WORDS[file_state]:<9}{f.local}  <- {f.repo}{why}")
            if broken:
                print(fix_command(broken), file=sys.stderr)
        elif args.action == "download":
            unknown = [n for n in args.models if n not in MODELS]
            if unknown:
                raise MissingWeightsError(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
            got = reg.download(args.models or REQUIRED, progress=_print_progress)
            print(f"\ninstalled {len(got)} file(s)" if got else "already installed", file=sys.stderr)
        elif args.action == "import":
            for local in reg.import_dir(args.dir):
                print(f"imported {local}")
        else:
            rows = reg.verify()
            for local, state, reason in rows:
                print(f"{state:<8}{local}" + (f"  ({reason})" if state == "damaged" else ""))
            if any(state == "damaged" for _, state, _ in rows):
                families = sorted({m.name for m in MODELS.values() for f in m.files
                                   if any(local == f.local and state == "damaged" for local, state, _ in rows)})
                print(f"Some files are damaged: replace them. {fix_command(families)}", file=sys.stderr)
                return 1
    except (MissingWeightsError, WeightsChecksumError, WeightsDownloadError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the weights folder itself cannot be written
        print(f"error: cannot write to {reg.root}: {exc.strerror or exc}. Set HEADCAST_WEIGHTS_DIR or --root to a "
              "folder you can write to.", file=sys.stderr)
        return 2
    return 0
