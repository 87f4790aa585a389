"""An unreadable NIfTI's reason is one line, relative to the archive, never its absolute path."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging import convert_image_file
from medmm.imaging.errors import ImageFileError
from medmm.pseudonym import Pseudonymizer


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
def test_truncated_reason_is_relative(tmp_path: Path, pseudonymizer: Pseudonymizer, name: str) -> None:
    archive = tmp_path / "Smith_John_archive"  # a folder name that must not reach the manifest reason
    (archive / "sub").mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.int16), np.eye(4)), tmp_path / "full.nii")
    head = (tmp_path / "full.nii").read_bytes()[:1000]
    (archive / "sub" / name).write_bytes(gzip.compress(head) if name.endswith(".gz") else head)
    with pytest.raises(ImageFileError) as info:
        convert_image_file(f"sub/{name}", archive, tmp_path / "run", pseudonymizer, "nifti")
    text = str(info.value)
    assert text.startswith(f"sub/{name}: cannot read the nifti image (OSError: Expected 2000 bytes")
    assert "Fix: " in text and "\n" not in text
    assert str(tmp_path) not in text and "Smith_John" not in text
