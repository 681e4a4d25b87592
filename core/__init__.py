"""Headcast core: models, audio, motion, rendering and the streaming engine (no GUI code here)."""

__version__ = "0.1.0"
