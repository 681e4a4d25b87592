"""Headcast's icons and style sheet, installed as package data so a wheel, pipx or a bundle carries them.

Files are found through `importlib.resources` (not a path relative to the source tree), which works for a
source checkout, an installed wheel and a PyInstaller bundle alike.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_dir() -> Path:
    """The folder holding `icons/` and `styles/` (a real folder in every supported install)."""
    return Path(str(files(__name__)))


def resource_path(*parts: str) -> Path:
    """The file `parts` inside this package, e.g. `resource_path("icons", "start.svg")`.

    Raises FileNotFoundError naming the file and the fix when an install lost the package data.
    """
    path = resource_dir().joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"Headcast resource {'/'.join(parts)} is missing at {path}; the install is "
                                "incomplete: reinstall Headcast (pip install --force-reinstall headcast).")
    return path
