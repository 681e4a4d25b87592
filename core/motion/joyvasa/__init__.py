"""JoyVASA's published speech-to-motion generator, loaded unchanged, and a motion source around it.

One concern per module: `files` (safe reading of the checkpoint and template), `audio` (HuBERT front end),
`denoiser` (the 8-layer decoder), `model` (the generator, its offline pipeline and strict loader),
`postprocess` (denormalisation, EMA, motion rows), `source` (the streaming `JoyVASAMotionSource`).
"""

from core.motion.joyvasa.files import (
           CHECKPOINT_REL,
           TEMPLATE_REL,
           JoyVASACheckpointError,
           MotionTemplate,
           read_checkpoint,
)
from core.motion.joyvasa.model import JoyVASA, JoyVASAArgs, JoyVASAModel, load_joyvasa, load_state_dict_strictly
from core.motion.joyvasa.postprocess import absolute_rows, postprocess, relative_rows
from core.motion.joyvasa.source import JoyVASAConfig, JoyVASAMotionSource

__all__ = ["CHECKPOINT_REL", "TEMPLATE_REL", "JoyVASA", "JoyVASAArgs", "JoyVASACheckpointError", "JoyVASAConfig",
           "JoyVASAModel", "JoyVASAMotionSource", "MotionTemplate", "absolute_rows", "load_joyvasa",
           "load_state_dict_strictly", "postprocess", "read_checkpoint", "relative_rows"]
