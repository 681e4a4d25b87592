"""JoyVASA's speech front end: HuBERT (chinese-hubert-base architecture, the checkpoint's own weights) at 50 Hz,
halved to the 25 fps motion rate.

The architecture is built in code from chinese-hubert-base's published config values (no download): JoyVASA's
checkpoint carries every encoder weight, so the hub's weights are never needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import HubertConfig, HubertModel

from core.timebase import SAMPLES_PER_FRAME

# Architecture fields of TencentGameMate/chinese-hubert-base (a standard hubert-base); the dropouts only matter
# in training, `apply_spec_augment` keeps `masked_spec_embed` in the state dict as in the checkpoint.
CHINESE_HUBERT_BASE = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
    layer_norm_eps=1e-5, feat_extract_norm="group", feat_extract_activation="gelu", conv_dim=(512,) * 7,
    conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_bias=False,
    num_feat_extract_layers=7, feat_proj_layer_norm=True, num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16, do_stable_layer_norm=False, apply_spec_augment=True, mask_time_prob=0.05,
    mask_time_length=10, mask_feature_prob=0.0, mask_feature_length=10, hidden_dropout=0.1,
    activation_dropout=0.1, attention_dropout=0.1, feat_proj_dropout=0.0, final_dropout=0.1, layerdrop=0.1,
    vocab_size=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
)

SAMPLES_PER_MOTION_FRAME = SAMPLES_PER_FRAME
PAD_EACH_SIDE = 20  # two successive reflect pads of 20 samples per side (40 in all): 640 n + 80 -> 2 n frames


def hubert_config(attn_implementation: str = "eager") -> HubertConfig:
    config = HubertConfig(**CHINESE_HUBERT_BASE)
    config._attn_implementation = attn_implementation
    return config


def build_hubert(attn_implementation: str = "eager") -> HubertModel:
    return HubertModel(hubert_config(attn_implementation))


def pad_window(wave: torch.Tensor) -> torch.Tensor:
    """(B, 640 n) -> (B, 640 n + 80): two reflect pads of 20 per side, as JoyVASA's `pad_audio` does for a
    whole number of motion frames (so the conv front end yields exactly 2 n frames at 50 Hz)."""
    if wave.shape[-1] % SAMPLES_PER_MOTION_FRAME:
        raise ValueError(f"a JoyVASA window must be a whole number of 640-sample frames, got {wave.shape[-1]}")
    x = wave.unsqueeze(1)
    x = F.pad(F.pad(x, (PAD_EACH_SIDE, PAD_EACH_SIDE), mode="reflect"), (PAD_EACH_SIDE, PAD_EACH_SIDE),
              mode="reflect")
    return x.squeeze(1)


def to_motion_rate(hidden: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, T50, C) at 50 Hz -> (B, n_frames, C): keep 2 n frames, then linear resampling (align_corners=False),
    which for the exact factor 2 averages frame pairs."""
    h = hidden[:, : 2 * n_frames].transpose(1, 2)
    if h.shape[-1] != 2 * n_frames:
        h = F.interpolate(h, size=2 * n_frames, mode="linear", align_corners=False)
    return F.interpolate(h, size=n_frames, mode="linear", align_corners=False).transpose(1, 2)


def encode_window(hubert: HubertModel, feature_map: torch.nn.Linear, wave: torch.Tensor) -> torch.Tensor:
    """Raw 16 kHz samples (B, 640 n) in [-1, 1] (no normalisation) -> audio features (B, n, D)."""
    n = wave.shape[-1] // SAMPLES_PER_MOTION_FRAME
    hidden = hubert(pad_window(wave)).last_hidden_state
    return feature_map(to_motion_rate(hidden, n))
