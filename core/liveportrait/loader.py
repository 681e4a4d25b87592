"""Load the official LivePortrait checkpoint files, unchanged and strictly, or build stand-in models.

Layout under the checkpoint root (the HF repo KwaiVGI/LivePortrait downloaded as a whole):

    liveportrait/base_models/{appearance_feature_extractor,motion_extractor,warping_module,spade_generator}.pth
    liveportrait/retargeting_models/stitching_retargeting_module.pth  (retarget_shoulder / _mouth / _eye)
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core.atomic import atomic_path
from core.errors import CheckpointError  # noqa: F401  (raised here; re-exported by core.liveportrait)

from .appearance_feature_extractor import AppearanceFeatureExtractor
from .config import LivePortraitConfig
from .keypoints import retarget_eye, retarget_lip
from .motion_extractor import MotionExtractor
from .spade_generator import SPADEDecoder
from .stitching_retargeting import StitchingRetargetingNetwork
from .warping_network import WarpingNetwork

BASE_MODELS = {
    "appearance_feature_extractor": "liveportrait/base_models/appearance_feature_extractor.pth",
    "motion_extractor": "liveportrait/base_models/motion_extractor.pth",
    "warping_module": "liveportrait/base_models/warping_module.pth",
    "spade_generator": "liveportrait/base_models/spade_generator.pth",
}
RETARGETING_FILE = "liveportrait/retargeting_models/stitching_retargeting_module.pth"
# attribute of LivePortraitModels -> group inside the retargeting file
RETARGETING_GROUPS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}
FIX = "Re-download it with `python -m core weights download liveportrait` or import a good copy with " \
      "`python -m core weights import DIR`."




@dataclass
class LivePortraitModels:
    config: LivePortraitConfig
    appearance_feature_extractor: AppearanceFeatureExtractor
    motion_extractor: MotionExtractor
    warping_module: WarpingNetwork
    spade_generator: SPADEDecoder
    stitching: StitchingRetargetingNetwork
    lip: StitchingRetargetingNetwork
    eye: StitchingRetargetingNetwork
    root: Path | None = None  # the checkpoint root these were loaded from (ONNX exports are cached beside it)

    def retarget_lip(self, x_s: torch.Tensor, lip_ratio: torch.Tensor) -> torch.Tensor:
        """The lip MLP as a keypoint delta (see keypoints.retarget_lip): what motion sources are handed, so
        they drive the network without importing this package."""
        return retarget_lip(self.lip, x_s, lip_ratio)

    def retarget_eye(self, x_s: torch.Tensor, eye_ratio: torch.Tensor) -> torch.Tensor:
        return retarget_eye(self.eye, x_s, eye_ratio)

    def modules(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in (*BASE_MODELS, *RETARGETING_GROUPS)}

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> LivePortraitModels:
        for module in self.modules().values():
            module.to(device=device, dtype=dtype)
        return self

    def eval(self) -> LivePortraitModels:
        for module in self.modules().values():
            module.eval().requires_grad_(False)
        return self


def _construct(config: LivePortraitConfig) -> LivePortraitModels:
    return LivePortraitModels(
        config=config,
        appearance_feature_extractor=AppearanceFeatureExtractor(config.appearance),
        motion_extractor=MotionExtractor(config.motion),
        warping_module=WarpingNetwork(config.warping),
        spade_generator=SPADEDecoder(config.spade),
        stitching=StitchingRetargetingNetwork(config.stitching),
        lip=StitchingRetargetingNetwork(config.lip),
        eye=StitchingRetargetingNetwork(config.eye),
    )


def build_liveportrait(config: LivePortraitConfig | None = None, seed: int | None = 0) -> LivePortraitModels:
    """Randomly initialised models, the stand-in weights for tests and demos.

    With a seed the weights are deterministic and the caller's global RNG is left as it was; seed=None draws
    from the global RNG.
    """
    config = config or LivePortraitConfig.official()
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        models = _construct(config)
    # Small MLP outputs keep stand-in stitching/retargeting deltas gentle, as trained ones are.
    with torch.no_grad():
        for name in RETARGETING_GROUPS:
            last = getattr(models, name).mlp[-1]
            last.weight.mul_(0.01)
            last.bias.zero_()
    return models.eval()


def _read(path: Path, groups: bool = False, mmap: bool = False) -> dict:
    """torch.load (weights_only) with every failure turned into a CheckpointError that names the file.

    `groups`: the file is a dict of state dicts (the retargeting file); the groups are checked by the caller.
    """
    if not path.is_file():
        raise CheckpointError(f"LivePortrait checkpoint file not found: {path}. {FIX}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises several types for truncated / foreign files
        # torch's own text ("PytorchStreamReader ... internal miniz error", "[Errno 22]") means nothing to a
        # user; what it always means here is a file that is not a complete PyTorch checkpoint.
        refused = "weights only load failed" in str(exc).lower()
        why = ("it holds Python objects, not only tensors, and is not loaded (that could run code)" if refused
               else "the file is damaged or incomplete, e.g. a truncated download")
        raise CheckpointError(f"Cannot read LivePortrait checkpoint {path}: {why}. {FIX}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a LivePortrait state dict (it holds a {type(data).__name__}). {FIX}")
    if not groups:
        odd = next((k for k, v in data.items() if not isinstance(v, torch.Tensor)), None)
        if odd is not None:
            raise CheckpointError(f"{path} is not a LivePortrait state dict (entry '{odd}' is a "
                                  f"{type(data[odd]).__name__}, not a tensor). {FIX}")
    return data


def _check_state(module: nn.Module, state: dict, path: Path, where: str = "") -> None:
    """Raise CheckpointError unless `state` has exactly `module`'s keys with its shapes."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing key(s) {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        hint = " (a 'module.' prefix from DDP training?)" if any(k.startswith("module.") for k in unexpected) else ""
        problems.append(f"unexpected key(s) {unexpected[:5]}" + (" ..." if len(unexpected) > 5 else "") + hint)
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            problems.append(f"key '{key}' has shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}")
    if problems:
        raise CheckpointError(
            f"{path}{where} does not match the LivePortrait network ({module.__class__.__name__}): "
            + "; ".join(problems) + f". Wrong model size or a damaged file. {FIX}"
        )


def _load_strict(module: nn.Module, state: dict, path: Path, where: str = "") -> None:
    _check_state(module, state, path, where)
    # assign: the networks were built on the meta device, so the loaded tensors become the parameters (no
    # random init, no second copy of ~520 MB).
    module.load_state_dict(state, strict=True, assign=True)
    left = [k for k, v in module.state_dict().items() if v.is_meta]
    if left:  # cannot happen after a strict load unless a module holds non-persistent buffers
        raise CheckpointError(f"{path}{where}: {left[:5]} were not filled by the file. {FIX}")


def load_liveportrait(
    root: str | Path, config: LivePortraitConfig | None = None, device: torch.device | str = "cpu"
) -> LivePortraitModels:
    """Build the networks for `config` and fill them from the official files under `root`."""
    root = Path(root)
    config = config or LivePortraitConfig.official()
    with torch.device("meta"):
        models = _construct(config)
    for name, rel in BASE_MODELS.items():
        path = root / rel
        _load_strict(getattr(models, name), _read(path), path)
    for name, mlp in load_retargeting(root, config).items():
        setattr(models, name, mlp)
    models.root = root
    return models.to(device).eval()


def load_retargeting(
    root: str | Path, config: LivePortraitConfig | None = None
) -> dict[str, StitchingRetargetingNetwork]:
    """Only the stitching, lip and eye MLPs (keys of the dict) from the retargeting file, on the CPU.

    The groups carry the DDP `module.` prefix in the official file; a leading one is stripped, so a file saved
    without it loads too.
    """
    path = Path(root) / RETARGETING_FILE
    config = config or LivePortraitConfig.official()
    mlps = {}
    for name, state in _retargeting_states(path).items():
        with torch.device("meta"):
            mlps[name] = StitchingRetargetingNetwork(getattr(config, name))
        _load_strict(mlps[name], state, path, where=f" [{RETARGETING_GROUPS[name]}]")
        mlps[name].eval().requires_grad_(False)
    return mlps


def _retargeting_states(path: Path, mmap: bool = False) -> dict[str, dict]:
    """{stitching, lip, eye} -> state dict (leading `module.` stripped) from the retargeting file."""
    groups = _read(path, groups=True, mmap=mmap)
    states = {}
    for name, group in RETARGETING_GROUPS.items():
        sd = groups.get(group)
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{path} has no '{group}' state dict (found {sorted(map(str, groups))}). {FIX}")
        states[name] = {k.removeprefix("module."): v for k, v in sd.items()}
    return states


def verify_checkpoint(path: str | Path, rel: str, config: LivePortraitConfig | None = None) -> None:
    """Check one official file without executing code from it (weights_only, memory-mapped: nothing is copied)
    and without building real networks: every key and shape against `config` (default: official).
    `rel`: its path in the official layout. Raises CheckpointError naming the file and what is wrong."""
    path = Path(path)
    config = config or LivePortraitConfig.official()
    if rel == RETARGETING_FILE:
        for name, state in _retargeting_states(path, mmap=True).items():
            with torch.device("meta"):
                mlp = StitchingRetargetingNetwork(getattr(config, name))
            _check_state(mlp, state, path, f" [{RETARGETING_GROUPS[name]}]")
        return
    name = next((n for n, r in BASE_MODELS.items() if r == rel), None)
    if name is None:
        raise ValueError(f"{rel} is not a LivePortrait checkpoint file")
    with torch.device("meta"):
        module = getattr(_construct(config), name)
    _check_state(module, _read(path, mmap=True), path)


def _atomic_save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_liveportrait(models: LivePortraitModels, root: str | Path) -> Path:
    """Write the models in the official layout (the retargeting groups with the DDP `module.` prefix)."""
    root = Path(root)
    for name, rel in BASE_MODELS.items():
        state = OrderedDict((k, v.detach().cpu()) for k, v in getattr(models, name).state_dict().items())
        _atomic_save(state, root / rel)
    groups = {
        group: OrderedDict((f"module.{k}", v.detach().cpu()) for k, v in getattr(models, name).state_dict().items())
        for name, group in RETARGETING_GROUPS.items()
    }
    _atomic_save(groups, root / RETARGETING_FILE)
    return root
