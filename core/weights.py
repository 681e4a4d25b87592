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
from dataclasses import dataclass
from pathlib import Path


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
    """The hub could not be reached or refused the file."""


class WeightsChecksumError(ValueError):
    """A weight file is not the published file (damaged or truncated download)."""


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


class WeightsRegistry:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def path(self, model: str, local: str | None = None) -> Path:
        """The installed path of a model's file (or of its folder when `local` is None); raises if missing."""
        entry = MODELS[model]
        files = [f for f in entry.files if local is None or f.local == local]
        for f in files:
            if not (self.root / f.local).is_file():
                raise MissingWeightsError(
                    f"Missing {model} weights: {self.root / f.local}. Run `python -m core weights download {model}` "
                    f"(needs internet), or `python -m core weights import DIR` with a folder that has {f.local}."
                )
        return self.root / files[0].local if local is not None else self.root

    def installed(self, model: str) -> bool:
        return all((self.root / f.local).is_file() for f in MODELS[model].files)

    def verify_file(self, f: WeightFile, path: Path | None = None) -> bool | None:
        """True/False when a digest is known, None when only presence can be checked."""
        path = path or self.root / f.local
        if f.sha256 is None:
            return None
        return sha256_of(path) == f.sha256

    def _install(self, f: WeightFile, source: Path, move: bool) -> None:
        """Verify `source`, then put it in place atomically; a bad file is quarantined, never installed."""
        ok = self.verify_file(f, source)
        if ok is False:
            bad = source.with_name(source.name + ".bad")
            if move:
                os.replace(source, bad)
            raise WeightsChecksumError(
                f"{f.local}: sha256 does not match the published file (damaged or truncated)."
                + (f" Kept aside as {bad}." if move else "") + " Download it again."
            )
        target = self.root / f.local
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial")
        if move:
            os.replace(source, tmp)
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)

    def download(self, model: str) -> None:
        from huggingface_hub import hf_hub_download

        staging = self.root / ".downloads"
        for f in MODELS[model].files:
            if (self.root / f.local).is_file() and self.verify_file(f) is not False:
                continue
            print(f"downloading {f.repo}/{f.filename}", flush=True)
            try:  # resumes partial downloads and shows a progress bar
                got = Path(hf_hub_download(f.repo, f.filename, local_dir=staging / f.repo))
            except Exception as exc:
                raise WeightsDownloadError(
                    f"Cannot download {f.repo}/{f.filename}: {str(exc).splitlines()[0]} Check the internet "
                    "connection, or import the files from a folder with `python -m core weights import DIR`."
                ) from exc
            self._install(f, got, move=True)

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

    def verify(self) -> list[tuple[str, str]]:
        """[(local path, 'ok' | 'present' | 'missing' | 'BAD')] for every file."""
        rows = []
        for model in MODELS.values():
            for f in model.files:
                path = self.root / f.local
                if not path.is_file():
                    rows.append((f.local, "missing"))
                else:
                    ok = self.verify_file(f)
                    rows.append((f.local, "present" if ok is None else ("ok" if ok else "BAD")))
        return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="weights folder (default: the user data dir, or HEADCAST_WEIGHTS_DIR)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="what each model needs and what is installed")
    p = sub.add_parser("download", help="download from Hugging Face (default: the required models)")
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"any of: {', '.join(MODELS)}")
    p = sub.add_parser("import", help="copy weight files from a folder (e.g. a LivePortrait pretrained_weights/)")
    p.add_argument("dir")
    sub.add_parser("verify", help="check installed files against their published sha256")


def main(args: argparse.Namespace) -> int:
    reg = WeightsRegistry(args.root)
    try:
        if args.action == "list":
            print(f"weights folder: {reg.root}")
            for m in MODELS.values():
                state = "installed" if reg.installed(m.name) else "missing"
                print(f"{m.name:<13}{'(optional)' if m.optional else '(required)':<12}{state:<10}{m.description}")
                for f in m.files:
                    print(f"    {'x' if (reg.root / f.local).is_file() else ' '} {f.local}  <- {f.repo}")
        elif args.action == "download":
            unknown = [n for n in args.models if n not in MODELS]
            if unknown:
                raise MissingWeightsError(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
            for name in args.models or REQUIRED:
                reg.download(name)
        elif args.action == "import":
            for local in reg.import_dir(args.dir):
                print(f"imported {local}")
        else:
            rows = reg.verify()
            for local, state in rows:
                print(f"{state:<8}{local}")
            if any(state == "BAD" for _, state in rows):
                print("Some files are damaged: run `python -m core weights download` to replace them.", file=sys.stderr)
                return 1
    except (MissingWeightsError, WeightsChecksumError, WeightsDownloadError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # network errors from the hub, offline mode, ...
        print(f"error: {exc.__class__.__name__}: {exc}\nCheck the internet connection, or import the files "
              "from a folder with `python -m core weights import DIR`.", file=sys.stderr)
        return 2
    return 0
