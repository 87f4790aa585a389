"""NIfTI files with 64-bit integer voxels (numpy-saved label maps) are converted, not an unexpected error."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging import convert_image_file
from medmm.imaging.volume_store import write_volume
from medmm.pseudonym import Pseudonymizer


@pytest.mark.parametrize(
    ("dtype", "values", "written"),
    [
        (np.int64, [0, 1, 4], "int16"),
        (np.uint64, [0, 1, 60000], "uint16"),
        (np.int64, [-(2**20), 2**20], "int32"),
        (np.int64, [0, 2**40], "int64"),  # beyond 32 bits: kept, written with an explicit dtype
    ],
)
def test_int64_labels(
    tmp_path: Path, pseudonymizer: Pseudonymizer, dtype: type, values: list[int], written: str
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    data = np.zeros((4, 5, 6), dtype=dtype)
    data.flat[: len(values)] = values
    nib.save(nib.Nifti1Image(data, np.diag([-1.0, 1.0, 2.0, 1.0]), dtype=dtype), archive / "seg.nii.gz")
    rec = convert_image_file("seg.nii.gz", archive, tmp_path / "run", pseudonymizer, "nifti")
    ours = nib.load(tmp_path / "run" / rec.path)
    assert rec.dtype == written == str(ours.get_data_dtype())
    ref = nib.as_closest_canonical(nib.load(archive / "seg.nii.gz"))
    np.testing.assert_array_equal(np.asarray(ours.dataobj, dtype=np.int64), np.asarray(ref.dataobj, np.int64))


def test_write_volume_int64_4d(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4 * 2, dtype=np.int64).reshape(2, 3, 4, 2) * 2**33
    w = write_volume(tmp_path, "v", data, np.eye(4), {})
    assert w.dtype == "int64" and w.shape == [2, 3, 4, 2]
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / w.path).dataobj), data)
