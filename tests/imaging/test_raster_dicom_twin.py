"""A DICOM picture without patient geometry (CR/DX/SC) lies in its volume as the same picture exported as
PNG does: upright in plot_slice, voxel for voxel equal; without PixelSpacing it claims no millimetres."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medmm.imaging import plot_slice
from medmm.ingest.pipeline import ingest_archive
from medmm.tables import read_table


def _picture() -> np.ndarray:
    pic = np.full((24, 16), 5, dtype=np.uint8)
    pic[1:6, 1:5] = 250  # bright block top-left
    pic[20:23, 12:15] = 90
    return pic


def _secondary_capture(path: Path, pic: np.ndarray, spacing: list[float] | None) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "OT", "twin"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = pic.shape[0], pic.shape[1], 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if spacing:
        ds.PixelSpacing = spacing
    ds.PixelData = pic.tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_picture_and_its_png_twin_give_the_same_volume(tmp_path: Path) -> None:
    archive, run = tmp_path / "archive", tmp_path / "run"
    archive.mkdir()
    Image.fromarray(_picture()).save(archive / "twin.png")
    _secondary_capture(archive / "twin.dcm", _picture(), None)
    _secondary_capture(archive / "measured.dcm", _picture(), [0.2, 0.1])
    ingest_archive(archive, run, workers=1, processes=False, key_file=tmp_path / "k")
    v = read_table(run / "volumes.parquet")
    by = {s[0]: r for s, r in zip(v["sources"], v.itertuples(), strict=True)}
    arrays = {k: np.asanyarray(nib.load(run / r.path).dataobj) for k, r in by.items()}
    assert np.array_equal(arrays["twin.dcm"], arrays["twin.png"])
    assert np.array_equal(arrays["measured.dcm"], arrays["twin.png"])
    fig = plot_slice(run / by["twin.dcm"].path)
    assert np.array_equal(np.asarray(fig.axes[0].images[0].get_array())[::-1], _picture())  # upright
    no_spacing = json.loads((run / by["twin.dcm"].sidecar).read_text())
    assert no_spacing["spacing_known"] is False and no_spacing["axes"].startswith("x: column")
    assert any(w.startswith("no PixelSpacing") for w in by["twin.dcm"].warnings)
    assert nib.load(run / by["twin.dcm"].path).header.get_xyzt_units()[0] == "unknown"
    measured = json.loads((run / by["measured.dcm"].sidecar).read_text())
    assert "spacing_known" not in measured
    assert list(by["measured.dcm"].spacing)[:2] == pytest.approx([0.1, 0.2])
    assert nib.load(run / by["measured.dcm"].path).header.get_xyzt_units()[0] == "mm"
