"""Paste-back against LivePortrait's own (issue 25: "after paste-back <= 1 level per pixel").

tests/fixtures/pasteback_parity.npz was made by the official `crop_image`, `prepare_paste_back` and `paste_back`
(src/utils/crop.py, commit 1986663b) run outside the repo by /work/pasteback-fixtures/make.py: the parity kit's image
padded into a larger canvas, the drive fixture's source landmarks cropped with the official source-crop settings
(512, scale 2.3, vy -0.125), a 512x512 integer test pattern with hard edges as the generated face, and Headcast's
own feather mask quantised to uint8, so both sides paste the same face with the same mask through the same crop.
Only the mask differs in the product: Headcast pastes with its feather mask, the official code with its template.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.face import CROP_SIZE, paste_back
from core.render import feather_mask

FIXTURE = Path(__file__).parent / "fixtures" / "pasteback_parity.npz"


def _inputs(fx, parity_vectors):
    image = (np.clip(parity_vectors["motion_extractor/in/x"][0].transpose(1, 2, 0), 0, 1) * 255).round()
    canvas = np.pad(image.astype(np.uint8), fx["pad"], constant_values=90)
    assert canvas.astype(np.int64).sum() == int(fx["canvas_checksum"]), "the kit image is not the one used"
    y, x = np.mgrid[0:512, 0:512]
    face = np.stack([(x * 3 + y * 5 + ((x // 16 + y // 16) % 2) * 60 + c * 70) % 256 for c in range(3)], -1)
    r = CROP_SIZE / 512  # the official crop is 512 px; Headcast's matrix maps to its 256 px crop, pixel centres kept
    matrix = fx["M_o2c"][:2] * r
    matrix[:, 2] += 0.5 * r - 0.5
    return canvas, face.astype(np.uint8), matrix


def test_paste_back_matches_the_official_within_one_level(parity_vectors):
    fx = np.load(FIXTURE)
    canvas, face, matrix = _inputs(fx, parity_vectors)
    np.testing.assert_array_equal(fx["mask"], (feather_mask(512) * 255).round().astype(np.uint8))
    out = paste_back(canvas, face, matrix, fx["mask"].astype(np.float32) / 255)
    diff = np.abs(out.astype(int) - fx["result"].astype(int))
    assert diff.max() <= 1, (diff.max(), int((diff > 1).sum()))
    assert (fx["result"] != canvas).any(-1).sum() > 50_000  # a large face really was pasted
    shifted = matrix.copy()
    shifted[:, 2] += 0.5  # half a crop pixel off: the check notices
    assert np.abs(paste_back(canvas, face, shifted, fx["mask"] / 255.0).astype(int) - fx["result"]).max() > 1
