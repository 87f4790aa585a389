"""A small sample archive from data the installed packages ship, plus generated series and junk.

:func:`build_sample_archive` copies pydicom's and nibabel's own test files (nothing is downloaded) and
adds what a real archive also holds: a synthetic CT series with fresh UIDs, a truncated copy, an empty
file, a text file, a DICOM with a misleading name, a whole-slide-like object, an ANALYZE pair and a
corrupt gzip. :func:`run_demo`
ingests it. :func:`replicate_series` (also used by the ingest benchmark) turns a few real DICOM slices
into series of any length with fresh, seeded UIDs.

>>> import tempfile, pathlib
>>> archive = build_sample_archive(pathlib.Path(tempfile.mkdtemp()) / "archive")  # doctest: +SKIP
>>> (archive / "generated" / "empty.dcm").stat().st_size  # doctest: +SKIP
0
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_sample_archive", "replicate_series", "run_demo"]

#: pydicom test files copied into the sample (those present in the installed wheel).
PYDICOM_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",  # same SOP instance as MR_small -> duplicate
    "MR_small_jp2klossless.dcm",
    "MR_truncated.dcm",
    "emri_small.dcm",  # multi-frame MR (present in some pydicom wheels)
    "waveform_ecg.dcm",
    "test-SR.dcm",
    "rtplan.dcm",
    "zipMR.gz",
)
#: pydicom folders with real multi-slice series (and the DICOMDIR indexing them).
PYDICOM_SERIES = ("dicomdirtests/77654033/CT2", "dicomdirtests/98892001/CT5N")
#: nibabel test files copied into the sample.
NIBABEL_FILES = (
    "example4d.nii.gz",
    "anatomical.nii",
    "functional.nii",
    "example_nifti2.nii.gz",
    "analyze.hdr",  # header only: its .img is not shipped -> quarantined
    "small.mnc",
    "test.mgz",
)

#: Made-up identity of the synthetic patient: ingest must never let it through.
DEMO_PATIENT = {
    "PatientName": "DEMO^SYNTHETIC^PATIENT",
    "PatientID": "DEMO-0001",
    "PatientBirthDate": "19700101",
}


def _uid(*parts: object) -> Any:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _slice_normal(ds: Any) -> tuple[list[float], list[float], list[float]]:
    iop = [float(v) for v in ds.ImageOrientationPatient]
    row, col = iop[:3], iop[3:]
    normal = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ]
    return row, col, normal


def replicate_series(
    templates: Sequence[Path],
    dest: Path,
    n_slices: int,
    *,
    slices_per_series: int | None = None,
    seed: int = 0,
    identity: dict[str, str] | None = None,
) -> list[Path]:
    """Write ``n_slices`` DICOM slices made from real template slices, as one or more fresh series.

    Each series gets new Study/Series/SOP Instance UIDs (derived from ``seed``, so reruns give identical
    files) and evenly spaced ImagePositionPatient values along the templates' slice normal; pixel data
    and all other attributes are the templates' (cycled).

    Parameters
    ----------
    templates
        Slices of one real series (same orientation and size).
    dest
        Output folder (``series_0000/slice_00000.dcm`` ...).
    n_slices
        Total slices to write.
    slices_per_series
        Slices per series (default: all in one series).
    seed
        Makes the UIDs; same seed, same files.
    identity
        Patient attributes to set (e.g. :data:`DEMO_PATIENT`); default keeps the templates'.

    Returns
    -------
    list of Path
        The files written.

    >>> import pydicom.data, tempfile, pathlib
    >>> ct = pathlib.Path(pydicom.data.get_testdata_file("CT_small.dcm", download=False))
    >>> out = replicate_series([ct], pathlib.Path(tempfile.mkdtemp()), 3)
    >>> [p.name for p in out]
    ['slice_00000.dcm', 'slice_00001.dcm', 'slice_00002.dcm']
    """
    import pydicom

    if n_slices < 1 or not templates:
        return []
    per = slices_per_series or n_slices
    sources = [pydicom.dcmread(p) for p in templates]
    first = sources[0]
    _, _, normal = _slice_normal(first)
    spacing = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
    origin = [float(v) for v in first.ImagePositionPatient]
    written = []
    for start in range(0, n_slices, per):
        s = start // per
        study, series = _uid(seed, s, "study"), _uid(seed, s, "series")
        folder = Path(dest) / f"series_{s:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(min(per, n_slices - start)):
            ds = sources[k % len(sources)]
            sop = _uid(seed, s, k, "sop")
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.SeriesNumber, ds.InstanceNumber = s + 1, k + 1
            ds.ImagePositionPatient = [
                round(o + k * spacing * n, 4) for o, n in zip(origin, normal, strict=True)
            ]
            ds.SliceLocation = round(k * spacing, 4)
            ds.ImageOrientationPatient = first.ImageOrientationPatient
            for key, value in (identity or {}).items():
                setattr(ds, key, value)
            path = folder / f"slice_{k:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            written.append(path)
    return written


def _copy(src: Path | None, dest: Path) -> bool:
    if src is None or not Path(src).is_file():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return True


def _package_files(archive: Path) -> None:
    import nibabel
    import pydicom.data

    pyd = Path(pydicom.data.__file__).parent / "test_files"
    for name in PYDICOM_FILES:
        _copy(pyd / name, archive / "pydicom" / name)
    for folder in PYDICOM_SERIES:
        for f in sorted((pyd / folder).glob("*")):
            _copy(f, archive / "pydicom" / folder / f.name)
    _copy(pyd / "dicomdirtests" / "DICOMDIR", archive / "pydicom" / "dicomdirtests" / "DICOMDIR")
    nib = Path(nibabel.__file__).parent / "tests" / "data"
    for name in NIBABEL_FILES:
        _copy(nib / name, archive / "nibabel" / name)


def _generated_files(archive: Path, seed: int) -> None:
    import nibabel as nib
    import numpy as np
    import pydicom
    import pydicom.data
    import pydicom.uid

    gen = archive / "generated"
    ct = Path(str(pydicom.data.get_testdata_file("CT_small.dcm", download=False)))
    slices = replicate_series([ct], gen / "synthetic_ct", 3, seed=seed, identity=DEMO_PATIENT)
    data = slices[0].read_bytes()
    (gen / "truncated_copy.dcm").write_bytes(data[: len(data) * 2 // 3])  # transfer cut off
    # a single CT image (its own series) under a misleading name: content decides, not the extension
    (single,) = replicate_series([ct], gen / "tmp", 1, seed=seed + 1, identity=DEMO_PATIENT)
    single.replace(gen / "scan_0001.bin")
    shutil.rmtree(gen / "tmp")
    # pixel data in an object that is no volume (whole-slide microscopy SOP class): quarantined
    (wsi,) = replicate_series([ct], gen / "tmp", 1, seed=seed + 2, identity=DEMO_PATIENT)
    ds = pydicom.dcmread(wsi)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.UID("1.2.840.10008.5.1.4.1.1.77.1.6")
    ds.save_as(gen / "slide_like.dcm", enforce_file_format=True)
    shutil.rmtree(gen / "tmp")
    (gen / "empty.dcm").write_bytes(b"")
    (gen / "notes.txt").write_text("Scanned requisition forms are kept elsewhere.\n")
    (gen / "corrupt.nii.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 2)
    rng = np.random.default_rng(seed)
    vol = rng.integers(0, 1000, size=(8, 8, 4), dtype=np.int16)
    nib.save(nib.AnalyzeImage(vol, np.diag([2.0, 2.0, 3.0, 1.0])), gen / "analyze_pair.hdr")


def build_sample_archive(dest: Path, *, seed: int = 0) -> Path:
    """Create the sample archive under ``dest`` (replacing it) and return its path.

    Parameters
    ----------
    dest
        Folder to (re)create.
    seed
        Seed of the generated parts (UIDs, voxel values).

    >>> import tempfile, pathlib
    >>> a = build_sample_archive(pathlib.Path(tempfile.mkdtemp()) / "a")
    >>> sorted(p.name for p in (a / "generated").iterdir())[:3]
    ['analyze_pair.hdr', 'analyze_pair.img', 'corrupt.nii.gz']
    """
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _package_files(dest)
    _generated_files(dest, seed)
    return dest


def run_demo(
    out: Path, *, workers: int = 2, key_file: Path | None = None, seed: int = 0, processes: bool = True
) -> dict[str, Any]:
    """Build the sample archive under ``out/sample_archive`` and ingest it into ``out``.

    Returns a summary (counts by status, files, volumes, where the outputs are) that later stages'
    demos extend. ``processes=False`` runs the Dask workers as threads (notebooks, tests).

    >>> summary = run_demo(Path("runs/demo"))  # doctest: +SKIP
    >>> summary["counts"]["ingested"] > 0  # doctest: +SKIP
    True
    """
    from medmm.ingest.pipeline import ingest_archive

    out = Path(out)
    archive = build_sample_archive(out / "sample_archive", seed=seed)
    result = ingest_archive(archive, out, workers=workers, key_file=key_file, processes=processes)
    return {
        "archive": str(archive),
        "run_dir": str(out),
        "manifest": str(out / "manifest.parquet"),
        "volumes": str(out / "volumes.parquet"),
        "counts": result.counts,
        "n_files": result.n_files,
        "n_volumes": result.n_volumes,
    }
