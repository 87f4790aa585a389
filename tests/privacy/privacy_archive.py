"""An identity-laden archive for the privacy audit: identity everywhere a real hospital export puts it.

Two kinds of identity, kept apart so that a finding says where a value came from:

* :data:`HEADER_IDENTITY` - values *inside* files (DICOM attributes, nested sequences, private tags,
  NIfTI text fields, EDF patient/recording fields, WFDB header comments, PNG text chunks, JPEG EXIF,
  report text and columns). None of them may reach any output, log, stdout or stderr.
* :data:`NAME_IDENTITY` - values in *file and folder names* (``Müller_Hans_MRN5550001/``). A run
  directory is the site's ledger and keeps archive paths and record names (``docs/ingest.md``), so these
  may appear in a run's path and record columns, never in a ``medmm share`` copy.

>>> import tempfile, pathlib
>>> a = build_archive(pathlib.Path(tempfile.mkdtemp()))
>>> sorted(p.name for p in a.iterdir())
['ecg', 'imaging', 'pictures', 'reports.csv']
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import urllib.parse
from pathlib import Path

import numpy as np

__all__ = [
    "HEADER_IDENTITY",
    "NAME_IDENTITY",
    "SERIES_DESCRIPTION",
    "build_archive",
    "found_in",
    "identity_forms",
    "unkeyed_digests",
    "write_dicom_series",
]

#: Identity written inside the files (never allowed in any output).
HEADER_IDENTITY: tuple[str, ...] = (
    "Smith^John",
    "John Smith",
    "Smithfield",  # NIfTI descrip / EDF name
    "MRN4471923",
    "ALT8812345",
    "19610317",
    "03/17/1961",
    "ACC7730291",
    "St Elsewhere Clinic",
    "Welby^Marcus",
    "Ratched^Mildred",
    "REQ5550123",
    "555-867-5309",
    "Zephyrine",  # private tag / EXIF / PNG text
    "Quixbury",  # WFDB comment / EDF recording field
)
#: Identity in file and folder names (allowed only in a run's path / record columns).
NAME_IDENTITY: tuple[str, ...] = ("Müller", "Ñúñez", "MRN5550001", "MRN5550002", "MRN5550003", "MRN5550004")

_PATIENT = {
    "PatientName": "Smith^John",
    "PatientID": "MRN4471923",
    "PatientBirthDate": "19610317",
    "AccessionNumber": "ACC7730291",
    "InstitutionName": "St Elsewhere Clinic",
    "ReferringPhysicianName": "Welby^Marcus",
    "OperatorsName": "Ratched^Mildred",
    "StudyDescription": "CT for John Smith",
    "ImageComments": "pt Smith^John DOB 19610317 call 555-867-5309",
    "BurnedInAnnotation": "YES",
    "StudyID": "MRN4471923",
}


def identity_forms(value: str) -> set[str]:
    """The spellings of ``value`` an output could hold: as is, upper/lower case, DICOM ``Last^First``
    turned round or spaced, URL- and base64-encoded.

    >>> sorted(identity_forms("Smith^John"))[:3]
    ['JOHN SMITH', 'John Smith', 'SMITH^JOHN']
    """
    forms = {value, value.upper(), value.lower()}
    if "^" in value:
        last, first = value.split("^", 1)
        forms |= {f"{first} {last}", f"{last} {first}", f"{last}, {first}", f"{first} {last}".upper()}
    forms |= {urllib.parse.quote(value), urllib.parse.quote_plus(value)}
    if len(value) >= 6:
        forms.add(base64.b64encode(value.encode()).decode().rstrip("="))
    return {f for f in forms if f}


def unkeyed_digests(value: str) -> set[str]:
    """The first 12 hex characters of unkeyed MD5/SHA-1/SHA-256 digests of ``value``: what a cache key
    or a file name made without the site key would hold.

    >>> len(unkeyed_digests("MRN4471923"))
    3
    """
    return {hashlib.new(name, value.encode()).hexdigest()[:12] for name in ("md5", "sha1", "sha256")}


def write_dicom_series(folder: Path, n: int, seed: int, series_description: str) -> None:
    """``n`` CT slices (pydicom's CT_small.dcm, fresh UIDs) under ``folder`` with the patient's identity
    in every attribute :data:`HEADER_IDENTITY` lists, a nested request item and a private tag."""
    import pydicom
    import pydicom.data
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from medmm.ingest.sample import replicate_series

    ct = Path(str(pydicom.data.get_testdata_file("CT_small.dcm", download=False)))
    for path in replicate_series([ct], folder, n, seed=seed):
        ds = pydicom.dcmread(path)
        for key, value in _PATIENT.items():
            setattr(ds, key, value)
        ds.SeriesDescription = series_description
        ds.ProtocolName = series_description  # free text too
        ds.OtherPatientIDs = "ALT8812345"
        item = Dataset()
        item.RequestedProcedureID = "REQ5550123"
        item.RequestedProcedureDescription = "CT chest for John Smith"
        item.AccessionNumber = "ACC7730291"
        ds.RequestAttributesSequence = Sequence([item])
        block = ds.private_block(0x0029, "ACME Private", create=True)
        block.add_new(0x10, "LO", "Zephyrine Smith^John")
        ds.save_as(path, enforce_file_format=True)


def _nifti(path: Path) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(np.arange(4 * 4 * 3, dtype=np.int16).reshape(4, 4, 3), np.eye(4))
    img.header["descrip"] = b"Smithfield MRN4471923 19610317"
    img.header["aux_file"] = b"Smithfield"
    img.header["intent_name"] = b"MRN4471923"
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)


def _pictures(folder: Path) -> None:
    from PIL import Image, PngImagePlugin

    folder.mkdir(parents=True, exist_ok=True)
    pixels = (np.arange(32 * 32, dtype=np.uint8).reshape(32, 32) * 3) % 255
    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", "Zephyrine Smith^John MRN4471923")
    info.add_itxt("Comment", "John Smith 19610317")
    Image.fromarray(pixels).save(folder / "Ñúñez_MRN5550002_cxr.png", pnginfo=info)
    exif = Image.Exif()
    exif[0x010E] = "Zephyrine John Smith MRN4471923"  # ImageDescription
    exif[0x013B] = "Ratched^Mildred"  # Artist
    Image.fromarray(pixels).save(folder / "Müller_MRN5550001_cxr.jpg", exif=exif.tobytes())


def _ecg_wave(fs: int, seconds: float, seed: int) -> np.ndarray:
    from medmm.demo.samples import synthetic_ecg

    ecg, _, _ = synthetic_ecg(float(fs), seconds, pvc_every=7, seed=seed)
    return ecg


def _wfdb(folder: Path, name: str, seed: int) -> None:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=250,
        units=["mV"],
        sig_name=["MLII"],
        p_signal=_ecg_wave(250, 40.0, seed).reshape(-1, 1),
        fmt=["16"],
        adc_gain=[200.0],
        baseline=[0],
        comments=["Patient: John Smith MRN4471923", "DOB 19610317 ward Quixbury phone 555-867-5309"],
        write_dir=str(folder),
    )


def _edf(path: Path, seed: int) -> None:
    import pyedflib

    path.parent.mkdir(parents=True, exist_ok=True)
    signal = _ecg_wave(256, 40.0, seed)
    with pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        w.setSignalHeaders(
            [
                {
                    "label": "ECG II",
                    "dimension": "mV",
                    "sample_frequency": 256,
                    "physical_max": 5.0,
                    "physical_min": -5.0,
                    "digital_max": 32767,
                    "digital_min": -32768,
                    "transducer": "",
                    "prefilter": "",
                }
            ]
        )
        w.setPatientName("Smithfield_John")
        w.setPatientCode("MRN4471923")
        w.setPatientAdditional("Zephyrine")
        w.setRecordingAdditional("Quixbury_ACC7730291")
        w.setTechnician("Ratched")
        w.writeSamples([signal])
        w.writeAnnotation(5.0, -1, "Patient John Smith moved")


def _reports(path: Path) -> None:
    import pandas as pd

    rows = [
        (
            "ACC7730291",
            "MRN4471923",
            "2024-01-05",
            "John Smith (DOB 03/17/1961, MRN4471923) cough. Call 555-867-5309.",
            "Heart size is enlarged. Small right pleural effusion. Dictated by Welby^Marcus.",
            "Cardiomegaly.",
        ),
        (
            "ACC7730292",
            "MRN5550001",
            "2024-02-01",
            "Fall, Mrs Müller.",
            "The lungs are clear. No pneumothorax.",
            "No acute abnormality.",
        ),
    ]
    cols = ["accession", "mrn", "date", "indication", "findings", "impression"]
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)


#: What operators type into SeriesDescription / ProtocolName (were copied into volume sidecars: finding R1).
SERIES_DESCRIPTION = "Chest John Smith MRN4471923"


def build_archive(root: Path, *, seed: int = 0, series_description: str = SERIES_DESCRIPTION) -> Path:
    """Write the archive under ``root/archive`` and return it: DICOM series, NIfTI, pictures, WFDB and
    EDF ECG records, a report CSV, in folders named after patients.

    Parameters
    ----------
    root
        Parent folder (the archive goes to ``root/archive``).
    seed
        Seed of the generated UIDs and signals.
    series_description
        The DICOM series' SeriesDescription.
    """
    archive = Path(root) / "archive"
    img = archive / "imaging"
    write_dicom_series(img / "Ñúñez_Maria_MRN5550004" / "CT", 3, seed, series_description)
    _nifti(img / "Müller_Hans_MRN5550001" / "t1_Müller.nii.gz")
    _pictures(archive / "pictures")
    ecg = archive / "ecg"
    _wfdb(ecg / "Ñúñez_MRN5550002", "MRN5550002_ecg", seed)
    _wfdb(ecg / "Müller_MRN5550001", "MRN5550001_ecg", seed + 1)
    _edf(ecg / "MRN5550003_Müller_holter.edf", seed + 2)
    _reports(archive / "reports.csv")
    return archive


def _texts(path: Path) -> list[str]:
    """What a reader of ``path`` sees: its bytes (UTF-8 and Latin-1), every table cell, PNG text chunks,
    a gzip member's bytes, and the path itself."""
    import gzip

    import pandas as pd

    data = path.read_bytes()
    out = [data.decode("utf-8", "replace"), data.decode("latin-1"), str(path)]
    if path.suffix in {".parquet", ".arrow", ".feather"}:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_feather(path)
        out.append(frame.astype(str).to_csv())
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as im:
            out.append(repr(im.info))
    if path.name.endswith(".gz"):
        with contextlib.suppress(OSError):
            out.append(gzip.decompress(data).decode("latin-1"))
    return out


def found_in(
    folder: Path, values: tuple[str, ...], *, texts: dict[str, str] | None = None, digests: bool = True
) -> list[str]:
    """``where: value`` for each of ``values`` found under ``folder`` (every file, see :func:`_texts`)
    or in ``texts`` (captured stdout, stderr, logs), in any of its :func:`identity_forms`, case-insensitive;
    with ``digests`` also as an unkeyed digest (:func:`unkeyed_digests`).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.json").write_text('{"name": "JOHN SMITH"}')
    >>> found_in(d, ("Smith^John",), texts={"stderr": "ok"})
    ['a.json: Smith^John']
    """
    forms: dict[str, str] = {}
    for value in values:
        for form in identity_forms(value) | (unkeyed_digests(value) if digests else set()):
            forms[form.lower()] = value
    sources = {str(p.relative_to(folder)): _texts(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    sources.update({name: [text] for name, text in (texts or {}).items()})
    hits = []
    for name, blobs in sources.items():
        low = [b.lower() for b in blobs]
        hits += sorted({f"{name}: {forms[f]}" for f in forms if any(f in b for b in low)})
    return hits
