"""Face + voice: per-part mixing of face and speech rows, and the fall-back to speech when the face leaves."""

from __future__ import annotations

import numpy as np
import pytest

from core import layout
from core.drive.mix import EYE_COLUMNS, HEAD_COLUMNS, MOUTH_COLUMNS, REST_COLUMNS, Split, mix_rows
from core.drive.take import presence_weights


def _rows(n: int, seed: int, dim: int = 70) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_parts_cover_every_column_once():
    cols = HEAD_COLUMNS + EYE_COLUMNS + MOUTH_COLUMNS + REST_COLUMNS
    assert sorted(cols) == list(range(layout.MOTION_DIM))


def test_default_split_head_and_eyes_from_the_face_mouth_from_speech():
    face, voice = _rows(5, 1), _rows(5, 2)
    out = mix_rows(face, voice, np.ones(5, np.float32))
    np.testing.assert_array_equal(out[:, HEAD_COLUMNS], face[:, HEAD_COLUMNS])
    np.testing.assert_array_equal(out[:, EYE_COLUMNS], face[:, EYE_COLUMNS])
    np.testing.assert_array_equal(out[:, REST_COLUMNS], face[:, REST_COLUMNS])
    np.testing.assert_array_equal(out[:, MOUTH_COLUMNS], voice[:, MOUTH_COLUMNS])
    all_voice = mix_rows(face, voice, np.ones(5, np.float32), Split("voice", "voice", "voice", "voice"))
    np.testing.assert_array_equal(all_voice, voice)


def test_face_leaving_and_returning_eases_to_speech_and_back():
    n = 30
    present = np.ones(n, bool)
    present[8:20] = False
    w = presence_weights(present, hold=2, ease=4)
    face, voice = _rows(n, 3), _rows(n, 4)
    out = mix_rows(face, voice, w)
    head = HEAD_COLUMNS
    np.testing.assert_array_equal(out[:10, head], face[:10, head])  # with the face, and the short hold
    np.testing.assert_array_equal(out[14:20, head], voice[14:20, head])  # gone: speech and idle motion
    np.testing.assert_allclose(out[11, head], voice[11, head] + 0.5 * (face[11, head] - voice[11, head]), atol=1e-6)
    np.testing.assert_array_equal(out[23:, head], face[23:, head])  # back
    np.testing.assert_array_equal(out[:, MOUTH_COLUMNS], voice[:, MOUTH_COLUMNS])  # speech all along


def test_absolute_lip_speech_rows_become_deltas_first():
    face, voice = _rows(3, 5), _rows(3, 6, dim=71)
    voice[:, 70] = 1.0
    source_exp = np.random.default_rng(7).normal(size=(21, 3)).astype(np.float32)
    out = mix_rows(face, voice, np.ones(3, np.float32), source_exp=source_exp)
    expected = layout.as_deltas(source_exp[None], voice)
    np.testing.assert_allclose(out[:, MOUTH_COLUMNS], expected[:, MOUTH_COLUMNS], atol=1e-6)
    with pytest.raises(ValueError, match="source_exp"):
        mix_rows(face, voice, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="must be driven by"):
        Split(mouth="camera")


def test_parts_named_on_the_command_line():
    from core.drive.mix import FACE_ONLY

    assert Split.face_parts("head,eyes,rest") == Split()
    assert Split.face_parts(" head , mouth ") == Split(eyes="voice", mouth="face", rest="voice")
    assert Split.face_parts("head,eyes,mouth,rest") == FACE_ONLY
    face, voice = _rows(4, 8), _rows(4, 9)
    np.testing.assert_array_equal(mix_rows(face, voice, np.ones(4, np.float32), FACE_ONLY), face)
    with pytest.raises(ValueError, match="'nose'"):
        Split.face_parts("head,nose")
    with pytest.raises(ValueError, match="no part"):
        Split.face_parts(" , ")
