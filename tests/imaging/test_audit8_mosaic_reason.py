"""A Siemens mosaic whose image is not a whole number of tiles (nibabel's 0.dcm: 48 slices in a 7 x 7
grid of a 256 x 256 image) says so and names a converter that unpacks it (dcm2niix), instead of quoting
numpy's "cannot reshape array of size 65536 into shape (7,36,7,36)"."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import nibabel
import pytest

from medmm.imaging import assemble_series, convert_stack, read_dicom_header
from medmm.imaging.errors import PixelDecodeError
from medmm.pseudonym import Pseudonymizer


def test_uneven_mosaic_reason(tmp_path: Path) -> None:
    shutil.copy(Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / "0.dcm", tmp_path / "dwi.dcm")
    inst = read_dicom_header(tmp_path / "dwi.dcm", "dwi.dcm")
    assert inst.is_mosaic
    (stack,) = assemble_series([inst]).stacks
    with warnings.catch_warnings(), pytest.raises(PixelDecodeError) as info:
        warnings.simplefilter("ignore")  # nibabel's "DICOM readers are highly experimental"
        convert_stack(stack, [inst], tmp_path, tmp_path / "run", Pseudonymizer(b"k" * 32))
    text = str(info.value)
    assert text.startswith(
        "dwi.dcm: Siemens mosaic of 48 slices in a 7 x 7 grid whose 256 x 256 image is not a whole number"
    ), text
    assert "dcm2niix" in text and "reshape" not in text
