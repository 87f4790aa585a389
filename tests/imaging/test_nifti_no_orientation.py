"""A NIfTI without qform and sform (orientation unknown) is converted with a warning saying so."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging import convert_image_file
from medmm.pseudonym import Pseudonymizer


@pytest.mark.parametrize(("qcode", "scode", "warned"), [(0, 0, True), (1, 0, False), (0, 2, False)])
def test_unknown_orientation_is_warned(
    tmp_path: Path, pseudonymizer: Pseudonymizer, qcode: int, scode: int, warned: bool
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    img = nib.Nifti1Image(np.ones((4, 5, 6), np.int16), np.diag([2.0, 2.0, 3.0, 1.0]))
    img.set_qform(img.affine, code=qcode)
    img.set_sform(img.affine, code=scode)
    nib.save(img, archive / "v.nii")
    rec = convert_image_file("v.nii", archive, tmp_path / "run", pseudonymizer, "nifti")
    hits = [w for w in rec.warnings if "orientation unknown" in w]
    assert bool(hits) is warned
    assert json.loads((tmp_path / "run" / rec.sidecar).read_text())["warnings"] == rec.warnings
    ref = nib.as_closest_canonical(nib.load(archive / "v.nii"))  # nibabel's affine, reoriented to RAS
    np.testing.assert_allclose(nib.load(tmp_path / "run" / rec.path).affine, ref.affine)


def test_analyze_keeps_its_own_warning(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    rec = convert_image_file(
        "imaging/oro_nifti_analyze/avg152T1.hdr", shared_data, tmp_path, pseudonymizer, "analyze"
    )
    assert len(rec.warnings) == 1 and rec.warnings[0].startswith("ANALYZE 7.5 has no orientation")
