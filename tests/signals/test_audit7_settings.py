"""Session 7 audit: stage settings that would hang or exhaust memory are refused up front."""

from __future__ import annotations

import pytest

from medmm.errors import ConfigError
from medmm.signals.process import Settings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_s": 0.0}, "chunk_s must be within [1, 86400], not 0.0"),  # was: 1-sample chunks, a hang
        ({"before_s": 1e9}, "before_s must be within [0, 86400]"),  # was: a 2e11-sample window, MemoryError
        ({"after_s": -5.0}, "after_s must be within [0, 86400]"),
        ({"good_sqi": 2.0}, "good_sqi must be within [0, 1]"),
        ({"min_beat_fs": 0.0}, "min_beat_fs must be within"),
    ],
)
def test_out_of_range_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_defaults_and_small_chunks_stay_valid() -> None:
    assert Settings().chunk_s == 600.0
    assert Settings(chunk_s=1.0).chunk_s == 1.0
