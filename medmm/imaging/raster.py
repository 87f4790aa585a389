"""2D picture exports (PNG, JPEG, TIFF) as one-slice volumes: pixels only, never their metadata.

Chest X-ray research sets (MIMIC-CXR-JPG, CheXpert, NIH ChestX-ray14 ...) ship JPEG or PNG exports.
:func:`read_raster` decodes one with Pillow into a 2D grayscale array ``[row, column]`` (row 0 is the
top of the picture as a viewer shows it, EXIF orientation applied); :func:`picture_to_volume` lays it
out as ``[x, y, 1]`` and :func:`convert_raster_file` writes it into the volume store like any other
volume (NIfTI + sidecar), flagged as having no known pixel spacing and no patient orientation.

Nothing but pixel values leaves the file: PNG text chunks (tEXt/iTXt/zTXt), EXIF, XMP, IPTC, ICC
profiles and JPEG comments may hold patient names or ids and are never read into an output or a log.

>>> import tempfile
>>> from PIL import Image
>>> d = Path(tempfile.mkdtemp())
>>> Image.fromarray(np.array([[0, 50], [100, 150], [200, 250]], np.uint8)).save(d / "cxr.png")
>>> pic = read_raster(d / "cxr.png", "cxr.png")
>>> pic.pixels.tolist(), pic.format
([[0, 50], [100, 150], [200, 250]], 'png')
>>> picture_to_volume(pic.pixels)[:, :, 0].tolist()  # x = column; y = row counted from the bottom
[[200, 100, 0], [250, 150, 50]]
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from medmm.imaging.errors import CorruptImageError, ImageTooLargeError, UnsupportedImageError
from medmm.imaging.picture_codecs import read_exact_jpeg, read_jpeg2000, refuse_tiff_layout
from medmm.imaging.picture_grey import colour_bits_lost, exact_channels, pillow_grayscale
from medmm.imaging.picture_streams import J2K_START, JP2_SIGNATURE, jpeg_exif_orientation, jpeg_frame
from medmm.imaging.records import SourceFormat, VolumeRecord
from medmm.imaging.volume_store import write_volume
from medmm.pseudonym import Pseudonymizer

__all__ = [
    "RASTER_FORMATS",
    "CorruptImageError",
    "ImageTooLargeError",
    "RasterImage",
    "convert_raster_file",
    "given_ids",
    "picture_to_volume",
    "read_raster",
]

#: the picture formats read here (:class:`~medmm.imaging.records.SourceFormat` values)
RASTER_FORMATS = ("png", "jpeg", "tiff", "jpeg2000")
#: Pillow's format names for each (a JPEG with a multi-picture extension opens as "MPO" through "JPEG")
_PIL_FORMATS = {"png": ("PNG",), "jpeg": ("JPEG",), "tiff": ("TIFF",), "jpeg2000": ("JPEG2000",)}
#: display names in messages
_NAMES = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "jpeg2000": "JPEG 2000"}

#: a warning every picture volume carries (also in its sidecar)
SPACING_NOTE = (
    "pixel spacing unknown (picture export): spacing 1.0 is one pixel, not a millimetre; "
    "orientation relative to the patient unknown"
)


#: how a picture's pixels lie in its volume (sidecar ``axes``; also DICOM pictures without patient geometry)
PICTURE_AXES = "x: column, left to right; y: row, bottom to top (picture = data[:, ::-1, 0].T)"


@dataclass(frozen=True)
class RasterImage:
    """A decoded picture: grayscale pixels ``[row, column]`` (row 0 at the top) and what was done.

    Attributes
    ----------
    pixels
        2D array: uint8 / uint16 as stored (int16/int32/float32 for 32-bit integer or float TIFFs).
    format
        ``"png"``, ``"jpeg"``, ``"tiff"`` or ``"jpeg2000"``.
    mode
        Pillow's mode of the stored picture (``"L"``, ``"I;16"``, ``"RGB"`` ...); for pictures decoded
        by a pylibjpeg plugin (``decoder``), the stored samples (``"1 x 12-bit unsigned"``).
    notes
        What was changed on the way (colour to grey, EXIF rotation, dropped alpha ...); never metadata.
    """

    pixels: np.ndarray
    format: str
    mode: str
    exif_orientation: int = 1
    grayscale: str = "stored as grayscale"
    notes: list[str] = field(default_factory=list)
    decoder: str = "Pillow"


_QUIET_LOCK = threading.Lock()
_quiet_depth = 0
_quiet_saved: list[tuple[logging.Logger, bool]] = []


@contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Silence Pillow's loggers while a file is read: at DEBUG level its TIFF reader logs every tag's
    value (ImageDescription, Artist ... can hold a patient's name). Counted, so that threads reading
    pictures at the same time (``processes=False``) keep them silent until the last one is done."""
    global _quiet_depth
    with _QUIET_LOCK:
        if _quiet_depth == 0:
            names = ["PIL", *(n for n in logging.Logger.manager.loggerDict if n.startswith("PIL."))]
            loggers = [logging.getLogger(n) for n in names]
            _quiet_saved[:] = [(lg, lg.disabled) for lg in loggers]
            for lg in loggers:
                lg.disabled = True
        _quiet_depth += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                for lg, was in _quiet_saved:
                    lg.disabled = was
                _quiet_saved.clear()


def _decode_error(rel: str, what: str, exc: BaseException, root: str) -> CorruptImageError:
    detail = " ".join(str(exc).replace(root, "").split()) or type(exc).__name__
    return CorruptImageError(
        rel,
        f"cannot decode the {what} picture ({type(exc).__name__}: {detail}); it is truncated or damaged",
        "copy the file again from the source (or re-export it); a partial copy cannot be repaired",
    )


def read_raster(path: Path, rel: str, fmt: str | None = None) -> RasterImage:
    """Decode a PNG, JPEG or TIFF picture into 2D grayscale pixels; nothing else of the file is kept.

    Parameters
    ----------
    path
        The file.
    rel
        Its name in messages (relative to the archive).
    fmt
        ``"png"``, ``"jpeg"`` or ``"tiff"``; ``None`` accepts any of them.

    Returns
    -------
    RasterImage
        Pixels ``[row, column]`` with row 0 at the top of the picture as a viewer shows it (an EXIF
        orientation tag is applied). Colour becomes grey: channels that are all equal (the usual
        X-ray export) keep their exact values, other colour pictures get Pillow's ``convert("L")``.

    Raises
    ------
    CorruptImageError
        Truncated or damaged data, or content that is not a picture of an accepted format.
    ImageTooLargeError
        Declared size above Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS`` x 2).
    UnsupportedImageError
        Several frames (animated PNG, multi-page TIFF) or a colour mode without a grey conversion.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> p = Path(tempfile.mkdtemp()) / "xray.jpg"
    >>> Image.new("RGB", (4, 3), (90, 90, 90)).save(p)
    >>> pic = read_raster(p, "xray.jpg")
    >>> pic.pixels.shape, pic.mode, pic.grayscale
    ((3, 4), 'RGB', 'identical R, G, B channels: their common value kept')
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if fmt is not None and fmt not in _PIL_FORMATS:
        raise ValueError(f"read_raster: fmt must be one of {RASTER_FORMATS}, not {fmt!r}")
    accepted = _PIL_FORMATS[fmt] if fmt else tuple(f for fs in _PIL_FORMATS.values() for f in fs)
    what = _NAMES[fmt] if fmt else "PNG/JPEG/TIFF/JPEG 2000"
    root = f"{Path(path).parent}/"
    exact = _read_exact(Path(path), rel, fmt)
    if exact is not None:
        return exact
    notes: list[str] = []
    Image.init()  # every plugin imported (and its logger made) now, so that _quiet_pillow silences it
    with _quiet_pillow():
        try:
            im = Image.open(path, formats=accepted)
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(
                rel,
                f"{what} picture declares more pixels than Pillow decodes safely ({exc})".replace(root, ""),
                "if it is a genuine picture (not a damaged header), downsample or tile it before ingest; "
                "whole-slide scans need a slide reader (e.g. OpenSlide), not medmm ingest",
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            refuse_tiff_layout(Path(path), rel, exc)
            raise _decode_error(rel, what, exc, root) from exc
        with im:
            stored_fmt = {"MPO": "jpeg"}.get(im.format or "", (im.format or "").lower())
            n_frames = int(getattr(im, "n_frames", 1) or 1)
            if n_frames > 1 and im.format == "TIFF" and _only_reduced_copies(im, n_frames):
                notes.append(
                    f"TIFF with {n_frames - 1} reduced-resolution copies (thumbnails / pyramid levels, "
                    "NewSubfileType 1): the full-resolution first picture read"
                )
                n_frames = 1
            if n_frames > 1 and im.format != "MPO":
                kind = {"png": "animated PNG", "tiff": "multi-page TIFF"}.get(stored_fmt, stored_fmt.upper())
                raise UnsupportedImageError(
                    rel,
                    f"{kind} with {n_frames} frames: medmm ingest reads single pictures",
                    "save each frame as its own file (e.g. PIL.ImageSequence, or `tiffsplit` for TIFF), "
                    "or convert a slice stack to NIfTI with its spacing",
                )
            if n_frames > 1:
                notes.append(f"multi-picture JPEG (MPO, {n_frames} pictures): the first (main) picture read")
            stored_mode = im.mode
            try:
                im.load()
                orientation = int(im.getexif().get(0x0112, 1) or 1)
            except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
                raise _decode_error(rel, what, exc, root) from exc
            if colour_bits_lost(im, stored_fmt, Path(path)):
                notes.append(
                    "16-bit colour or grey+alpha picture: Pillow decodes 8 bits per channel (low bits lost); "
                    "save it as 16-bit grayscale to keep them"
                )
            if orientation not in range(1, 9):
                orientation = 1
            shown: Image.Image = im
            if orientation != 1:
                shown = ImageOps.exif_transpose(im)
                notes.append(
                    f"EXIF orientation {orientation} applied: the picture is turned as viewers show it"
                )
            pixels, how = pillow_grayscale(shown, stored_fmt, rel, notes)
    if pixels.ndim != 2 or 0 in pixels.shape:
        raise CorruptImageError(
            rel, f"decoded to an empty or odd array {pixels.shape}", "re-export the picture"
        )
    return RasterImage(
        pixels=np.ascontiguousarray(pixels),
        format=stored_fmt,
        mode=stored_mode,
        exif_orientation=orientation,
        grayscale=how,
        notes=notes,
    )


def _only_reduced_copies(im: Any, n_frames: int) -> bool:
    """True when every TIFF page after the first is flagged a reduced-resolution copy of it (tag 254
    NewSubfileType bit 0: a thumbnail or a pyramid level), so that the file holds one picture."""
    try:
        if int(im.tag_v2.get(254, 0)) & 1:
            return False
        for k in range(1, n_frames):
            im.seek(k)
            if not int(im.tag_v2.get(254, 0)) & 1:
                return False
        return True
    except (OSError, EOFError, ValueError, TypeError):
        return False
    finally:
        im.seek(0)


#: numpy equivalents of PIL.ImageOps.exif_transpose for each EXIF orientation (checked in the tests)
_EXIF_TURNS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.T,
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].T,
    8: lambda a: np.rot90(a, 1),
}


def _magic_format(path: Path) -> str:
    """``"jpeg"`` / ``"jpeg2000"`` from a file's first bytes, else ``""`` (what Pillow alone reads)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:4] == J2K_START or head == JP2_SIGNATURE:
        return "jpeg2000"
    return ""


def _read_exact(path: Path, rel: str, fmt: str | None) -> RasterImage | None:
    """A JPEG 2000 picture, or a JPEG that Pillow cannot decode, read exactly by a pylibjpeg plugin
    (:mod:`medmm.imaging.picture_codecs`); ``None`` when Pillow reads the file."""
    try:
        kind = fmt if fmt in ("jpeg", "jpeg2000") else _magic_format(path) if fmt is None else ""
        if kind == "jpeg2000":
            pic = read_jpeg2000(path, rel)
        elif kind == "jpeg":
            frame = jpeg_frame(path)
            pic = None if frame is None or frame.pillow_decodes else read_exact_jpeg(path, rel, frame)
        else:
            pic = None
    except OSError as exc:
        raise CorruptImageError(
            rel, f"cannot read the file ({exc.strerror or type(exc).__name__})", "check the file"
        ) from exc
    if pic is None:
        return None
    notes: list[str] = []
    pixels, how = exact_channels(pic.samples, pic.precision, notes)
    orientation = jpeg_exif_orientation(path) if kind == "jpeg" else 1
    if orientation != 1:
        pixels = _EXIF_TURNS[orientation](pixels)
        notes.append(f"EXIF orientation {orientation} applied: the picture is turned as viewers show it")
    if pixels.ndim != 2 or 0 in pixels.shape:
        raise CorruptImageError(
            rel, f"decoded to an empty or odd array {pixels.shape}", "re-export the picture"
        )
    return RasterImage(
        pixels=np.ascontiguousarray(pixels),
        format=kind,
        mode=pic.mode,
        exif_orientation=orientation,
        grayscale=how,
        notes=notes,
        decoder=pic.decoder,
    )


def picture_to_volume(pixels: np.ndarray) -> np.ndarray:
    """Lay a picture ``[row, column]`` (row 0 at the top) out as a volume ``[x, y, 1]``.

    ``x`` runs along the columns from left to right and ``y`` along the rows from the **bottom** up, so
    ``volume[:, :, 0].T`` drawn with ``origin="lower"`` (as :func:`~medmm.imaging.plot_slice` and NIfTI
    viewers show an axial slice, +y up) is the picture the right way up, unmirrored. The picture is
    ``volume[:, ::-1, 0].T``.

    >>> pic = np.array([[1, 2, 3], [4, 5, 6]])  # 2 rows, 3 columns
    >>> vol = picture_to_volume(pic)
    >>> vol.shape, bool((vol[:, ::-1, 0].T == pic).all())
    ((3, 2, 1), True)
    """
    return np.ascontiguousarray(np.asarray(pixels)[::-1, :].T)[:, :, None]


#: the warning of a file that an ids table was given for, but that got no patient id from it
NO_PATIENT_NOTE = (
    "no patient id: the ids table has no row (or an empty patient) for this file; medmm align skips it"
)


def given_ids(
    ids: Mapping[str, str] | None, pseudonymizer: Pseudonymizer, notes: list[str]
) -> dict[str, str | None]:
    """Pseudonymous ``patient_id``, ``study_id`` and shifted ``study_time`` from user-given raw ids.

    ``ids`` holds ``patient``, ``study``, ``study_time`` (ISO date or date-time), ``modality`` and
    ``table`` (its name) as the ids table gives them (:mod:`medmm.ingest.image_ids`); ``None`` when no
    table was given. Pseudonyms are those of DICOM and of the reports stage
    (``Pseudonymizer.id(value, "patient" / "study")``); the time is shifted by the patient's keyed date
    shift. Problems become ``notes``, never errors.

    >>> pz = Pseudonymizer(b"k" * 32)
    >>> out = given_ids({"patient": "20", "study": "", "study_time": "2020-03-01"}, pz, [])
    >>> out["patient_id"] == pz.id("20", "patient"), out["study_id"], out["study_time"] < "2020-03-01"
    (True, None, True)
    """
    out: dict[str, str | None] = {"patient_id": None, "study_id": None, "study_time": None}
    if ids is None:
        return out
    patient, study, when = ids.get("patient", ""), ids.get("study", ""), ids.get("study_time", "")
    if not patient:
        if ids.get("table"):  # a table was given and misses this file (not: --modality alone)
            notes.append(NO_PATIENT_NOTE.replace("the ids table", ids["table"]))
        return out
    out["patient_id"] = pseudonymizer.id(patient, "patient")
    out["study_id"] = pseudonymizer.id(study, "study") if study else None
    if when:
        try:
            parsed = datetime.fromisoformat(when)
        except ValueError:
            notes.append("study time in the ids table is not an ISO date or date-time: left out")
        else:
            out["study_time"] = pseudonymizer.shift_datetime(patient, parsed).isoformat()
    return out


def convert_raster_file(
    rel_path: str,
    archive_root: Path,
    run_dir: Path,
    pseudonymizer: Pseudonymizer,
    fmt: str,
    *,
    ids: Mapping[str, str] | None = None,
) -> VolumeRecord:
    """Write a PNG/JPEG/TIFF picture as a one-slice volume ``[x, y, 1]`` with its sidecar.

    The affine is the identity: spacing 1 per pixel (unknown, flagged ``spacing_known: false`` in the
    sidecar, NIfTI spatial unit "unknown"), orientation ``"none"`` (no patient geometry, voxels left as
    laid out by :func:`picture_to_volume`).

    Parameters
    ----------
    rel_path
        Path relative to ``archive_root``.
    archive_root, run_dir, pseudonymizer
        As for :func:`~medmm.imaging.convert_image_file`.
    fmt
        ``"png"``, ``"jpeg"`` or ``"tiff"``.
    ids
        Raw ``patient``, ``study``, ``study_time`` and ``modality`` the user gives for this file (an ids
        table row, :mod:`medmm.ingest.image_ids`), pseudonymized by :func:`given_ids`; ``None``: no ids,
        and the modality is unknown (it is never guessed).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root, run = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    >>> Image.new("L", (5, 4), 7).save(root / "cxr.png")
    >>> rec = convert_raster_file("cxr.png", root, run, Pseudonymizer(b"k" * 32), "png")
    >>> rec.shape, rec.spacing, rec.orientation, rec.source_format.value
    ([5, 4, 1], [1.0, 1.0, 1.0], 'none', 'png')
    """
    if fmt not in RASTER_FORMATS:
        raise ValueError(f"convert_raster_file: fmt must be one of {RASTER_FORMATS}, not {fmt!r}")
    from medmm.imaging.errors import ImageFileError

    path = Path(archive_root) / rel_path
    if not path.is_file():
        raise ImageFileError(rel_path, "file does not exist", "check the path")
    pic = read_raster(path, rel_path, fmt)
    source = SourceFormat(pic.format)  # the picture format names are SourceFormat values
    rel = Path(rel_path).as_posix()
    volume_id = pseudonymizer.id(f"{pic.format}:{rel}", "volume")
    notes = [SPACING_NOTE, *pic.notes]
    idents = given_ids(ids, pseudonymizer, notes)
    modality = (ids or {}).get("modality", "")
    rows, cols = (int(n) for n in pic.pixels.shape)
    sidecar: dict[str, Any] = {
        "source_format": source.value,
        "n_sources": 1,
        "volume_id": volume_id,
        "warnings": notes,
        "spacing_known": False,
        "spacing_unit": "pixel",
        "picture": {
            "rows": rows,
            "columns": cols,
            "stored_mode": pic.mode,
            "decoder": pic.decoder,
            "codec": _NAMES[pic.format],
            "grayscale": pic.grayscale,
            "exif_orientation": pic.exif_orientation,
        },
        "axes": PICTURE_AXES,
    }
    if modality:
        sidecar["modality"] = modality
    if idents["study_time"]:
        sidecar["study_time"] = idents["study_time"]
    written = write_volume(
        run_dir,
        volume_id,
        picture_to_volume(pic.pixels),
        np.eye(4),
        sidecar,
        orientation="none",
        reorient=False,
        xyz_units="unknown",
    )
    return VolumeRecord(
        volume_id=volume_id,
        **asdict(written),
        modality=modality,
        n_sources=1,
        source_format=source,
        sources=[rel],
        warnings=notes,
        **idents,
    )
