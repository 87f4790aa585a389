"""plot_slice: a researcher sees the lesion slice of an ingested image with its mask laid over it."""

from __future__ import annotations

import doctest
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pytest

import medmm.imaging.preview as preview
from medmm.imaging import convert_image_file, most_labelled_slice, plot_slice
from medmm.imaging.errors import ImageFileError
from medmm.pseudonym import Pseudonymizer

PAT = "imaging/brats_subset/train/brats_2013_pat0005_1"


def test_docstring_examples() -> None:
    result = doctest.testmod(preview, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
    plt.close("all")


def test_brats_lesion_slice(shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer) -> None:
    flair = convert_image_file(
        f"{PAT}/Flair_subtrMeanDivStd.nii.gz", shared_data, tmp_path, pseudonymizer, "nifti"
    )
    mask = convert_image_file(f"{PAT}/OTMultiClass.nii.gz", shared_data, tmp_path, pseudonymizer, "nifti")
    labels = np.asarray(nib.load(tmp_path / mask.path).dataobj)
    per_slice = np.count_nonzero(labels, axis=(0, 1))
    out = tmp_path / "figures" / "flair_tumour.png"
    fig = plot_slice(tmp_path / flair.path, label=tmp_path / mask.path, out=out)
    k = int(np.argmax(per_slice))
    assert per_slice[k] > 0 and most_labelled_slice(labels) == k
    assert fig.axes[0].get_title().endswith(f"axial slice {k} of {labels.shape[2]}")
    assert len(fig.axes[0].images) == 2  # grey image + tumour overlay
    overlay = fig.axes[0].images[1].get_array()
    assert np.ma.count(overlay) == per_slice[k]  # exactly the tumour voxels are coloured
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_4d_and_explicit_index(tmp_path: Path) -> None:
    data = np.zeros((6, 5, 4, 3), dtype=np.int16)
    data[:, :, 1, 0] = 7
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "f.nii.gz")
    fig = plot_slice(tmp_path / "f.nii.gz", axis=2, index=1)
    plane = fig.axes[0].images[0].get_array()
    assert plane.shape == (5, 6) and float(plane.max()) == 7.0  # first volume, transposed for display
    plt.close(fig)


def test_errors_name_file_and_fix(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.uint8), np.eye(4)), tmp_path / "m.nii.gz")
    with pytest.raises(ImageFileError, match=r"m\.nii\.gz.*does not match.*Fix: "):
        plot_slice(tmp_path / "v.nii.gz", label=tmp_path / "m.nii.gz")
    with pytest.raises(ImageFileError, match=r"missing\.nii\.gz: cannot read.*Fix: "):
        plot_slice(tmp_path / "missing.nii.gz")
    with pytest.raises(ImageFileError, match=r"slice 9 is outside 0\.\.3"):
        plot_slice(tmp_path / "v.nii.gz", index=9)
    plt.close("all")
