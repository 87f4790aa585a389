"""Written volumes say their spatial unit: millimetres (``xyzt_units``), as dcm2niix's do."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging.volume_store import write_volume


@pytest.mark.parametrize(
    "shape",
    [(6, 5, 4), (6, 5, 4, 2)],  # the nibabel-free 3D path and the nibabel path (4D)
)
def test_written_volume_spatial_unit_is_mm(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data = np.arange(int(np.prod(shape)), dtype=np.int16).reshape(shape)
    written = write_volume(tmp_path, "v", data, np.diag([0.8, 0.8, 2.5, 1.0]), {})
    img = nib.load(tmp_path / written.path)
    assert img.header.get_xyzt_units()[0] == "mm"
    assert img.header.get_zooms()[:3] == pytest.approx((0.8, 0.8, 2.5))
