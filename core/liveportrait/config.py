"""Sizes of LivePortrait's five networks: the official human model and a tiny one of the same architecture."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AppearanceConfig:
    image_channel: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512  # must equal reshape_channel * reshape_depth
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


@dataclass(frozen=True)
class MotionExtractorConfig:
    depths: tuple[int, ...] = (3, 3, 9, 3)  # ConvNeXtV2-tiny
    dims: tuple[int, ...] = (96, 192, 384, 768)
    num_kp: int = 21
    num_bins: int = 66


@dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4


@dataclass(frozen=True)
class WarpingConfig:
    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512  # channels of the flattened warped volume (C * D)
    num_down_blocks: int = 2
    reshape_channel: int = 32
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass(frozen=True)
class SpadeConfig:
    upscale: int = 2  # 256 -> 512 output through a pixel shuffle
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64
    spade_hidden: int = 128


@dataclass(frozen=True)
class MLPConfig:
    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int


@dataclass(frozen=True)
class LivePortraitConfig:
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    motion: MotionExtractorConfig = field(default_factory=MotionExtractorConfig)
    warping: WarpingConfig = field(default_factory=WarpingConfig)
    spade: SpadeConfig = field(default_factory=SpadeConfig)
    stitching: MLPConfig = MLPConfig(126, (128, 128, 64), 65)
    lip: MLPConfig = MLPConfig(65, (128, 128, 64), 63)
    eye: MLPConfig = MLPConfig(66, (256, 256, 128, 128, 64), 63)
    name: str = "official"

    @classmethod
    def official(cls) -> LivePortraitConfig:
        """The human model of LivePortrait's models.yaml: 256x256 crop in, 512x512 face out."""
        return cls()

    @classmethod
    def tiny(cls) -> LivePortraitConfig:
        """Same architecture, narrow and shallow: 256x256 crop in, a 8x4x16x16 feature volume, 128x128 out.

        For tests and `--synthetic-weights tiny`; the MLPs keep their official sizes (they are tiny already and
        their input/output sizes are fixed by the 21 keypoints).
        """
        return cls(
            appearance=AppearanceConfig(block_expansion=8, num_down_blocks=4, max_features=32,
                                        reshape_channel=8, reshape_depth=4, num_resblocks=1),
            motion=MotionExtractorConfig(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128)),
            warping=WarpingConfig(block_expansion=8, max_features=32, num_down_blocks=2, reshape_channel=8,
                                  dense_motion=DenseMotionConfig(block_expansion=8, max_features=32,
                                                                 num_blocks=2, reshape_depth=4, compress=2)),
            spade=SpadeConfig(upscale=2, block_expansion=8, max_features=64, num_down_blocks=2,
                              out_channels=16, spade_hidden=16),
            name="tiny",
        )
