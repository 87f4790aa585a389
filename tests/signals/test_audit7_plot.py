"""Session 7 audit: strips of traces in µV / raw ADC values, and of a multi-lead array."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from medmm.signals.plot import plot_ecg_strip


def test_microvolt_trace_with_default_unit(tmp_path: Path) -> None:
    # e.g. a channel of read_edf (physical units, µV) plotted without unit="uV"
    x = 10000.0 * np.sin(np.arange(3600) / 20.0)
    t0 = time.process_time()
    fig = plot_ecg_strip(x, 360.0, out=tmp_path / "uv.png")  # was: MemoryError (10^5 x 10^5 grid lines)
    assert time.process_time() - t0 < 20
    assert (tmp_path / "uv.png").stat().st_size > 0
    assert len(fig.axes[0].get_yticks(minor=True)) < 1000


def test_multi_lead_array_refused() -> None:
    with pytest.raises(ValueError, match="one lead"):  # was: the two leads drawn one after the other
        plot_ecg_strip(np.zeros((3600, 2)), 360.0)
    assert len(plot_ecg_strip(np.zeros((3600, 1)), 360.0).axes) == 1
