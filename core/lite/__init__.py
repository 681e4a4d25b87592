"""Lite mode (issue 11): a per-portrait atlas rendered once by the full renderer, then frames by lookup and blend.

Modules: `atlas` (grid, build, cache), `projection` (motion rows -> atlas coordinates + head similarity),
`renderer` (`LiteRenderer`, the full renderer's interface), `select` (full / lite / auto by measurement), `cli`.
Nothing heavy is imported here, so the CLI can list `--renderer` choices without loading torch.
"""

RENDERERS = ("full", "lite", "auto")
DEFAULT_GRID = (9, 3)  # mouth levels x eye levels of the default atlas (core.lite.atlas.AtlasSpec's defaults)
