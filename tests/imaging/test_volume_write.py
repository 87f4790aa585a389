"""Volumes are standard .nii.gz files (ISA-L or zlib gzip) that read back exactly and deterministically."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medmm.imaging.volume_store import write_volume


def test_written_volume_reads_back_and_is_deterministic(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(-1024, 3000, size=(7, 5, 4), dtype=np.int16)
    affine = np.diag([-0.5, 0.7, 2.0, 1.0])
    first = write_volume(tmp_path / "a", "v", data, affine, {})
    write_volume(tmp_path / "b", "v", data, affine, {})
    raw_a = (tmp_path / "a" / first.path).read_bytes()
    assert raw_a[:2] == b"\x1f\x8b"  # gzip
    assert raw_a == (tmp_path / "b" / first.path).read_bytes()  # zero timestamp: same bytes on re-runs
    img = nib.load(tmp_path / "a" / first.path)
    assert isinstance(img, nib.Nifti1Image)
    assert img.get_data_dtype() == np.int16
    # reoriented to RAS: x was flipped, world positions kept
    np.testing.assert_array_equal(np.asarray(img.dataobj), data[::-1])
    np.testing.assert_allclose(img.affine[:3, :3], np.diag([0.5, 0.7, 2.0]))
