"""Speech -> LivePortrait motion: layout, motion sources (retargeting, DiT, JoyVASA)."""

from .factory import make_motion_source

__all__ = ["make_motion_source"]
