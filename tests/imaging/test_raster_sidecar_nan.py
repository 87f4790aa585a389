"""Volume sidecars are strict JSON: an undefined value (NaN spacing, rescale ...) is written as null."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medmm.imaging.volume_store import write_volume


def _strict(text: str) -> dict:
    def refuse(name: str) -> float:
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("reorient", [True, False])
def test_non_finite_sidecar_values_are_null(tmp_path: Path, reorient: bool) -> None:
    sidecar = {
        "rescale_slope": float("nan"),
        "slice_thickness_mm": np.float32("nan"),
        "kvp": float("inf"),
        "window": [np.float64(40.0), -float("inf")],
        "nested": {"te": float("nan"), "flip": np.float32(90.0)},
    }
    w = write_volume(tmp_path, "vol-1", np.zeros((2, 3, 4), np.int16), np.eye(4), sidecar, reorient=reorient)
    text = (tmp_path / w.sidecar).read_text()
    assert "NaN" not in text and "Infinity" not in text
    side = _strict(text)
    assert side["rescale_slope"] is None and side["slice_thickness_mm"] is None and side["kvp"] is None
    assert side["window"] == [40.0, None]
    assert side["nested"] == {"te": None, "flip": 90.0}  # a numpy float is a JSON number, not a string
    assert side["shape"] == [2, 3, 4]


def test_unknown_units_only_as_asked(tmp_path: Path) -> None:
    import nibabel as nib

    w = write_volume(tmp_path, "a", np.zeros((2, 2, 2), np.uint8), np.eye(4), {})
    assert nib.load(tmp_path / w.path).header.get_xyzt_units()[0] == "mm"
    w = write_volume(
        tmp_path, "b", np.zeros((2, 2, 1), np.uint8), np.eye(4), {}, reorient=False, xyz_units="unknown"
    )
    assert nib.load(tmp_path / w.path).header.get_xyzt_units()[0] == "unknown"
    with pytest.raises(ValueError, match="xyz_units"):
        write_volume(tmp_path, "c", np.zeros((2, 2, 1), np.uint8), np.eye(4), {}, xyz_units="inch")
