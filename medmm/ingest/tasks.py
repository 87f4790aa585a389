"""The functions Dask runs for ``medmm ingest``: plain functions over small picklable records.

* :func:`scan_batch` sniffs a batch of files and reads DICOM headers (a few KB per file, no pixels);
* :func:`convert_job` turns one DICOM stack or one NIfTI/ANALYZE file into a volume written by the
  worker itself (atomically, under a deterministic name) and returns the small :class:`VolumeRecord`.

Neither raises for bad input: problems come back as reasons, so Dask only retries tasks whose worker died.

>>> from medmm.pseudonym import Pseudonymizer
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "notes.txt").write_text("hello")
>>> [s.row.status.value for s in scan_batch([Entry("notes.txt", 5, 0)], str(root), Pseudonymizer(b"k" * 32))]
['non_image']
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from medmm.errors import InputError, reason_of
from medmm.ingest.discover import Entry
from medmm.ingest.errors import (
    CompressedInputError,
    CorruptGzipError,
    EmptyFileError,
    IngestTaskError,
    UnreadableInputError,
    UnsupportedFormatError,
)
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.sniff import (
    HEAD_BYTES,
    IMAGING_FORMATS,
    NON_IMAGE_FORMATS,
    RASTER_FORMATS,
    Format,
    Sniffed,
    sniff_head,
)
from medmm.pseudonym import Pseudonymizer
from medmm.records import Status

if TYPE_CHECKING:
    from medmm.imaging.records import DicomInstance, VolumeRecord

__all__ = [
    "FAULT_ENV",
    "ConvertJob",
    "Converted",
    "Scanned",
    "convert_job",
    "image_extension",
    "other_picture",
    "quiet_readers",
    "scan_batch",
    "unexpected",
]

#: Fault injection for tests: path of a flag file; the first conversion task run in a worker *process*
#: creates it and kills that process (as an out-of-memory kill would). Never set in production.
FAULT_ENV = "MEDMM_FAULT_KILL_ONCE"

_CONVERT_HINT = {
    Format.minc1: "convert it to NIfTI (e.g. mnc2nii or nibabel)",
    Format.minc2: "convert it to NIfTI (e.g. mnc2nii or nibabel)",
    Format.mgh: "convert it to NIfTI (e.g. FreeSurfer mri_convert)",
    Format.parrec: "convert it to NIfTI (e.g. dcm2niix or nibabel parrec2nii)",
    Format.nrrd: "convert it to NIfTI (e.g. SimpleITK or 3D Slicer)",
    Format.ecat: "convert it to NIfTI (e.g. nibabel)",
    Format.afni: "convert it to NIfTI (e.g. AFNI 3dAFNItoNIFTI)",
}


@dataclass
class Scanned:
    """One scanned file: its (provisional) manifest row, and for DICOM images the header summary.

    ``pending`` rows still wait for series assembly / conversion; the others are final.
    """

    row: IngestManifestRow
    instance: DicomInstance | None = None
    pending: bool = False


@dataclass
class ConvertJob:
    """One conversion: a DICOM stack (``stack`` + its ``instances``) or one image file (``rel``).

    The ingest pipeline converts DICOM stacks in group tasks (:mod:`medmm.ingest.groups`) and sends
    only image files here; a stack job carries its header records.
    """

    key: str
    paths: list[str]
    stack: Any = None
    instances: list[Any] = field(default_factory=list)
    rel: str = ""
    fmt: str = ""
    ids: Any = None  # FileIds of an image file from the user's ids table (medmm.ingest.image_ids), raw


@dataclass
class Converted:
    """Outcome of a :class:`ConvertJob`: the volume written, or the reason it could not be."""

    key: str
    volume: VolumeRecord | None = None
    reason: str = ""


def unexpected(rel: str, exc: BaseException) -> str:
    """Manifest reason for an exception nobody expected (a bug, or a lost worker).

    >>> unexpected("a.dcm", RuntimeError("boom")).split(". Fix")[0]
    'IngestTaskError: a.dcm: processing failed unexpectedly (RuntimeError: boom)'
    >>> unexpected("a.dcm", ValueError("bad int: 'SMITH^JOHN'")).split("(")[1].split(")")[0]
    'ValueError: bad int: <value not shown>'
    """
    from medmm.imaging.errors import library_message  # here: medmm.imaging is heavy to import

    # a library's message can quote a header value (pydicom: "... value 'SMITH^JOHN'"): not shown
    text = reason_of(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {library_message(exc)}"
    err = IngestTaskError(
        rel,
        f"processing failed unexpectedly ({text})",
        "re-run `medmm ingest` to retry; if it fails again, report it with this message",
    )
    return reason_of(err)


#: Raw data files (no signature) and the header file next to them that says what they are.
_DATA_FILES = {
    ".rec": (Format.parrec, ".par"),
    ".brik": (Format.afni, ".head"),
    ".brik.gz": (Format.afni, ".head"),
}


def _display(fmt: Format) -> str:
    return "PAR/REC" if fmt is Format.parrec else fmt.value.upper()


def _data_file_owner(full: Path) -> tuple[Format, str] | None:
    """(format, header name) when ``full`` is e.g. the ``.REC`` of a ``.PAR`` or ``.BRIK`` of a ``.HEAD``."""
    lower = full.name.lower()
    for ext, (fmt, header_ext) in _DATA_FILES.items():
        if lower.endswith(ext):
            stem = full.name[: -len(ext)]
            for candidate in (stem + header_ext, stem + header_ext.upper()):
                if (full.parent / candidate).is_file():
                    return fmt, candidate
    return None


def _final(entry: Entry, fmt: str, status: Status, reason: str, **extra: Any) -> Scanned:
    row = IngestManifestRow(
        path=entry.rel,
        size=entry.size,
        mtime_ns=entry.mtime_ns,
        format=fmt,
        status=status,
        reason=reason,
        **extra,
    )
    return Scanned(row)


class _MemoIds:
    """A pseudonymizer's ``id`` remembered for one scan batch: its files mostly share patient, study
    and series, and each pseudonym is an HMAC."""

    def __init__(self, pz: Pseudonymizer) -> None:
        self._pz = pz
        self._ids: dict[tuple[str, str], str] = {}

    def id(self, value: str, kind: str) -> str:
        found = self._ids.get((value, kind))
        if found is None:
            found = self._ids[(value, kind)] = self._pz.id(value, kind)
        return found


def _scan_dicom(entry: Entry, fh: BinaryIO, sniffed: Sniffed, pz: Pseudonymizer | _MemoIds) -> Scanned:
    """Read the header from the open file; every readable DICOM object goes on to series assembly
    (which routes kinds)."""
    from medmm.imaging.dicom_header import read_dicom_header, read_open_header
    from medmm.imaging.series import series_key_of

    try:
        size = os.fstat(fh.fileno()).st_size
        # (a file emptied since it was sniffed: read_dicom_header says so)
        inst = read_open_header(fh, entry.rel, size) if size else read_dicom_header(Path(fh.name), entry.rel)
    except InputError as exc:
        return _final(entry, sniffed.format, Status.quarantined, reason_of(exc))
    row = IngestManifestRow(
        path=entry.rel,
        size=entry.size,
        mtime_ns=entry.mtime_ns,
        format=sniffed.format,
        status=Status.quarantined,  # provisional: settled after series assembly
        kind=inst.kind.value,
        modality=inst.modality or None,
        patient_id=pz.id(inst.patient_key, "patient") if inst.patient_key else None,
        study_id=pz.id(inst.study_uid, "study") if inst.study_uid else None,
        series_id=pz.id(series_key_of(inst), "series"),  # the same pseudonym the volume gets
    )
    return Scanned(row, instance=inst, pending=True)


#: File name endings that only ever name images (a ``.hdr``/``.img`` may be another format's text/raw data).
_IMAGE_ENDINGS = (
    (".nii.gz", "NIfTI"),
    (".nii", "NIfTI"),
    (".dcm", "DICOM"),
    (".dicom", "DICOM"),
    (".png", "PNG"),
    (".jpg", "JPEG"),
    (".jpeg", "JPEG"),
    (".tif", "TIFF"),
    (".tiff", "TIFF"),
    (".jpe", "JPEG"),
    (".jfif", "JPEG"),
    (".jls", "JPEG-LS"),
    (".jp2", "JPEG 2000"),
    (".j2k", "JPEG 2000"),
    (".j2c", "JPEG 2000"),
    (".jpc", "JPEG 2000"),
    (".jpx", "JPEG 2000"),
    (".jpf", "JPEG 2000"),
)

#: what medmm ingest reads (for reasons that say what a file is not)
_READS = "DICOM, NIfTI, ANALYZE and PNG/JPEG/TIFF/JPEG 2000 pictures"
_READS_OR = "DICOM, NIfTI, ANALYZE or a PNG/JPEG/TIFF/JPEG 2000 picture"

#: picture formats recognised only to say so: (name, test on the head). medmm reads none of them; the
#: fix converts them to PNG, which keeps the grey values exactly and which medmm reads.
_OTHER_PICTURES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    (
        "BMP",
        lambda h: (
            h[:2] == b"BM"
            and len(h) >= 18
            and h[6:10] == bytes(4)
            and int.from_bytes(h[14:18], "little") in (12, 16, 40, 52, 56, 64, 108, 124)
        ),
    ),
    ("GIF", lambda h: h[:6] in (b"GIF87a", b"GIF89a")),
    ("WebP", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP"),
    ("JPEG XL", lambda h: h[:2] == b"\xff\x0a" or h[:12] == b"\0\0\0\x0cJXL \r\n\x87\n"),
    ("HEIF/AVIF", lambda h: h[4:8] == b"ftyp" and h[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"avis")),
)


def other_picture(head: bytes) -> str:
    """The name of a picture format medmm does not read (BMP, GIF, WebP, JPEG XL, HEIF/AVIF) that
    ``head`` (a file's first bytes) starts, else ``""``.

    >>> other_picture(b"GIF89a" + bytes(10)), other_picture(b"RIFF" + bytes(4) + b"WEBPVP8 ")
    ('GIF', 'WebP')
    >>> other_picture(b"hello")
    ''
    """
    return next((name for name, test in _OTHER_PICTURES if test(head)), "")


def image_extension(rel: str) -> str:
    """The image format that ``rel``'s name claims (``""`` when its extension names none).

    >>> image_extension("a/IM0001.DCM"), image_extension("b/t1.nii.gz"), image_extension("notes.txt")
    ('DICOM', 'NIfTI', '')
    """
    lower = rel.lower()
    return next((name for end, name in _IMAGE_ENDINGS if lower.endswith(end)), "")


def _scan_one(entry: Entry, root: Path, pz: Pseudonymizer | _MemoIds) -> Scanned:
    full = root / entry.rel
    if entry.size == 0:
        err = EmptyFileError(
            entry.rel, "file is empty (0 bytes)", "copy it again from the source or remove it"
        )
        return _final(entry, Format.empty, Status.quarantined, reason_of(err))
    try:
        with open(full, "rb") as fh:  # one open for the sniff and (for DICOM) the header
            head = fh.read(HEAD_BYTES)
            sniffed = sniff_head(head)
            if not sniffed.error and sniffed.base is Format.dicom and not sniffed.gzipped:
                return _scan_dicom(entry, fh, sniffed, pz)
    except OSError as exc:
        err2 = UnreadableInputError(
            entry.rel, f"cannot be read ({exc.strerror or exc})", "grant read access to the ingest user"
        )
        return _final(entry, "unknown", Status.quarantined, reason_of(err2))
    fmt = sniffed.format
    if sniffed.error:
        err3 = CorruptGzipError(
            entry.rel, sniffed.error, "copy the file again from the source; the copy is damaged"
        )
        return _final(entry, fmt, Status.quarantined, reason_of(err3))
    base = sniffed.base
    if base is Format.dicom:
        err4 = CompressedInputError(
            entry.rel, "gzip-compressed DICOM file", "decompress it (gunzip) in the archive and re-run"
        )
        return _final(entry, fmt, Status.quarantined, reason_of(err4), kind="dicom")
    if base in RASTER_FORMATS and sniffed.gzipped:
        err9 = CompressedInputError(
            entry.rel,
            f"gzip-compressed {_display(base)} picture",
            "decompress it (gunzip) in the archive and re-run",
        )
        return _final(entry, fmt, Status.quarantined, reason_of(err9), kind=base.value)
    if base in IMAGING_FORMATS:
        return Scanned(
            IngestManifestRow(
                path=entry.rel,
                size=entry.size,
                mtime_ns=entry.mtime_ns,
                format=fmt,
                status=Status.quarantined,
                kind=base.value,
            ),
            pending=True,
        )
    if base in NON_IMAGE_FORMATS:
        what = f"{base.value} file" + (f" ({sniffed.note})" if sniffed.note else "")
        named = image_extension(entry.rel)
        if named:  # e.g. an HTML error page saved under a scan's name: the scan is missing, say so
            err8 = UnsupportedFormatError(
                entry.rel,
                f"named like a {named} image but holds a {what}, not an image",
                "copy the image again from the source (or rename the file if it is not an image)",
            )
            return _final(entry, fmt, Status.quarantined, reason_of(err8), kind=base.value)
        return _final(entry, fmt, Status.non_image, f"{what}: not an imaging input", kind=base.value)
    if base is Format.unknown or base is Format.gzip:
        owner = _data_file_owner(full)
        if owner is not None:  # the raw voxels of a header-described format we do not convert
            name, header = owner
            err7 = UnsupportedFormatError(
                entry.rel,
                f"{_display(name)} image data belonging to {header!r}: medmm ingest reads {_READS} only",
                _CONVERT_HINT[name],
            )
            return _final(entry, fmt, Status.quarantined, reason_of(err7), kind=name.value)
        picture = other_picture(head) if base is Format.unknown else ""
        if picture:  # a picture export in a format Pillow reads but medmm does not take
            err10 = UnsupportedFormatError(
                entry.rel,
                f"{picture} picture: medmm ingest reads PNG, JPEG, TIFF and JPEG 2000 pictures, "
                f"not {picture}",
                "convert it to PNG, which keeps its grey values (e.g. ImageMagick `magick IN OUT.png`, "
                "or Pillow `Image.open(IN).save(OUT.png)`), and ingest the PNG",
            )
            kind = picture.split("/")[0].lower().replace(" ", "")  # bmp, gif, webp, jpegxl, heif
            return _final(entry, fmt, Status.quarantined, reason_of(err10), kind=kind)
        detail = sniffed.note or "unrecognised binary content"
        err5 = UnsupportedFormatError(
            entry.rel,
            f"not {_READS_OR} ({detail})",
            "convert it to DICOM or NIfTI, or remove it from the archive",
        )
        return _final(entry, fmt, Status.quarantined, reason_of(err5))
    hint = _CONVERT_HINT.get(base, "convert it to NIfTI or DICOM")
    err6 = UnsupportedFormatError(
        entry.rel, f"{_display(base)} image: medmm ingest reads {_READS} only", hint
    )
    return _final(entry, fmt, Status.quarantined, reason_of(err6), kind=base.value)


@contextmanager
def quiet_readers() -> Iterator[None]:
    """Silence pydicom's warnings and log records while reading inputs: they quote header values.

    pydicom reports invalid values verbatim (``Invalid value for VR PN: 'Doe^John'``); inside ingest
    tasks these messages are dropped so patient identity never reaches a log. Problems that matter
    surface as manifest reasons instead.

    >>> import logging
    >>> with quiet_readers():
    ...     logging.getLogger("pydicom").warning("Invalid value for VR PN: 'Doe^John'")  # dropped
    """
    logger = logging.getLogger("pydicom")  # its children (pydicom.pixels ...) propagate up to it
    # nibabel prints header fixes ("pixdim[1,2,3] should be positive ...") through its own handler on
    # "nibabel.global", naming no file: a stray stderr line in the middle of a run's output
    nib_logger = logging.getLogger("nibabel.global")
    sink = logging.NullHandler()
    saved = logger.disabled, logger.propagate
    nib_saved = nib_logger.disabled
    logger.disabled, logger.propagate = True, False
    nib_logger.disabled = True
    logger.addHandler(sink)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.removeHandler(sink)
        logger.disabled, logger.propagate = saved
        nib_logger.disabled = nib_saved


def _as_pseudonymizer(value: Pseudonymizer | bytes) -> Pseudonymizer:
    """Tasks take the site key as bytes (sent inline, never scattered) or a ready pseudonymizer."""
    return value if isinstance(value, Pseudonymizer) else Pseudonymizer(value)


def scan_batch(
    entries: list[Entry],
    archive_root: str,
    pseudonymizer: Pseudonymizer | bytes,
) -> list[Scanned]:
    """Sniff every file of a batch and read the DICOM headers (no pixel data).

    Parameters
    ----------
    entries
        Files to scan (relative paths under ``archive_root``).
    archive_root
        The archive folder.
    pseudonymizer
        Turns source identifiers into the pseudonyms written to the manifest (or the site key).
    Returns
    -------
    list of Scanned
        One per entry, in order; a bad file is a final quarantined row, never an exception.

    >>> scan_batch([], "/nonexistent", Pseudonymizer(b"k" * 32))
    []
    """
    root, pz = Path(archive_root), _MemoIds(_as_pseudonymizer(pseudonymizer))
    out = []
    with quiet_readers():
        for entry in entries:
            try:
                out.append(_scan_one(entry, root, pz))
            except Exception as exc:  # one odd file never costs the rest of the batch
                out.append(_final(entry, "unknown", Status.quarantined, unexpected(entry.rel, exc)))
    return out


def _maybe_die_for_test() -> None:
    flag = os.environ.get(FAULT_ENV)
    if not flag or multiprocessing.parent_process() is None:
        return
    try:
        fd = os.open(flag, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(70)


def convert_job(
    job: ConvertJob,
    archive_root: str,
    run_dir: str,
    pseudonymizer: Pseudonymizer | bytes,
    keep_descriptions: bool = False,
) -> Converted:
    """Write the volume of one DICOM stack or one NIfTI/ANALYZE file; never raises for bad input.

    Parameters
    ----------
    job
        The stack (with its header summaries) or the image file to convert.
    archive_root, run_dir
        Where inputs are read and ``volumes/`` is written.
    pseudonymizer
        Pseudonyms and date shifts for the volume's identifiers (or the site key).
    keep_descriptions
        A DICOM stack's sidecar also gets SeriesDescription / ProtocolName (``--keep-descriptions``).

    >>> convert_job(ConvertJob(key="k", paths=["x.nii"], rel="x.nii", fmt="nifti1"),
    ...             "/nonexistent", "/tmp", Pseudonymizer(b"k" * 32)).reason.split(":")[0]
    'ImageFileError'
    """
    _maybe_die_for_test()
    root, out = Path(archive_root), Path(run_dir)
    try:
        with quiet_readers():
            volume = _convert(job, root, out, _as_pseudonymizer(pseudonymizer), keep_descriptions)
    except InputError as exc:
        return Converted(job.key, reason=reason_of(exc))
    except Exception as exc:  # a bug in one conversion never kills the run
        return Converted(job.key, reason=unexpected(job.paths[0] if job.paths else job.key, exc))
    return Converted(job.key, volume=volume)


def _convert(
    job: ConvertJob, root: Path, out: Path, pseudonymizer: Pseudonymizer, keep_descriptions: bool = False
) -> VolumeRecord:
    from medmm.imaging.convert import convert_image_file, convert_stack

    if job.stack is not None:
        keep = keep_descriptions
        return convert_stack(job.stack, job.instances, root, out, pseudonymizer, keep_descriptions=keep)
    base = Format(job.fmt.removesuffix(".gz"))
    source = "analyze" if base is Format.analyze else base.value if base in RASTER_FORMATS else "nifti"
    ids = None if job.ids is None else asdict(job.ids)
    return convert_image_file(job.rel, root, out, pseudonymizer, source, ids=ids)
