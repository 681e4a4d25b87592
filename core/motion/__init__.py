"""Speech -> LivePortrait motion: layout, DiT, diffusion, motion sources."""
