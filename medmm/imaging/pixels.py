"""Decode DICOM pixel data into rescaled arrays (memory bounded by one series).

Uncompressed single-frame monochrome slices (implicit/explicit VR little endian, explicit big endian)
take a fast path, :func:`read_native_stack`: the header scan recorded where each file's Pixel Data
starts, so the stack is assembled by reading those bytes straight into one preallocated
``[column, row, slice]`` array (no second header parse, no per-slice objects), then rescaled exactly as
MONAI does (``float32(stored) * slope + intercept``). Every other single-frame slice (compressed
syntaxes, colour, float pixel data) goes through MONAI's :class:`monai.data.PydicomReader` (pydicom +
pylibjpeg decoders, RescaleSlope/Intercept applied, array indexed ``[column, row]``), imported only
when such a slice is met. MONAI's own series combining sorts by
InstanceNumber and measures spacing along z only, so stacking is done here in the order
:func:`~medmm.imaging.series.assemble_series` chose. Multi-frame objects are decoded with pydicom
directly, because PydicomReader neither reorders frames nor applies the per-frame rescale of enhanced
objects; Siemens mosaics are unpacked with nibabel's CSA-aware ``MosaicWrapper``.

>>> decode_error_type(ValueError("The length of the pixel data in the dataset doesn't match"))
'TruncatedPixelDataError'
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medmm.imaging.errors import PixelDecodeError, TruncatedPixelDataError, library_message
from medmm.imaging.records import DicomInstance

__all__ = [
    "decode_error_type",
    "native_fast_path",
    "read_mosaic",
    "read_multiframe",
    "read_native_stack",
    "read_slice",
]

_TRUNCATION_HINTS = (
    "length of the pixel data",
    "truncat",
    "end of file",
    "not enough",
    "insufficient",
    "fewer",
)


def decode_error_type(exc: BaseException) -> str:
    """Name of the InputError class a decoder exception maps to (truncation vs other decode failure)."""
    text = str(exc).lower()
    return "TruncatedPixelDataError" if any(h in text for h in _TRUNCATION_HINTS) else "PixelDecodeError"


#: transfer syntaxes whose frames are JPEG (ISO 10918 / JPEG-LS) or JPEG 2000 codestreams
_JPEG_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
    }
)
_J2K_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    }
)
#: JPEG Extended (processes 2 and 4): 12-bit JPEG, which Pillow and pydicom's GDCM plugin refuse
_JPEG12 = "1.2.840.10008.1.2.4.51"


def _frames_problem(source: Any, syntax: str) -> str:
    """Why an encapsulated JPEG / JPEG 2000 frame is cut off or damaged, ``""`` when every frame's stream
    is complete, ``"?"`` when it cannot be told (another syntax, an unreadable file).

    ``source`` is the file's path or its pydicom Dataset. libjpeg decodes a cut-off stream without an
    error (it fills in what is missing), so a complete-looking image is no proof.
    """
    if source is None or syntax not in _JPEG_SYNTAXES | _J2K_SYNTAXES:
        return "?"
    import pydicom
    from pydicom.encaps import generate_frames

    from medmm.imaging.picture_streams import j2k_codestream, j2k_problem, jpeg_problem

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(source) if isinstance(source, (str, Path)) else source
            n = int(ds.get("NumberOfFrames", 1) or 1)
            frames = list(generate_frames(ds.PixelData, number_of_frames=n))
    except Exception:  # the frames themselves cannot be found: the decoder's message says why
        return "?"
    for k, frame in enumerate(frames):
        if syntax in _JPEG_SYNTAXES:
            problem = jpeg_problem(frame)
        else:
            code, problem = j2k_codestream(frame)
            problem = problem or j2k_problem(code) or _j2k_size_problem(code, ds)
        if problem:
            return f"frame {k + 1}: {problem}" if len(frames) > 1 else problem
    return ""


def _j2k_size_problem(code: bytes, ds: Any) -> str:
    """Why a JPEG 2000 codestream's SIZ picture size disagrees with Rows/Columns (damaged), or ``""``."""
    from medmm.imaging.picture_streams import j2k_info

    try:
        info = j2k_info(code)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (ValueError, AttributeError, TypeError):
        return ""
    if (info.rows, info.columns) == (rows, cols):
        return ""
    return (
        f"the JPEG 2000 codestream declares {info.columns} x {info.rows} pixels but Columns x Rows say "
        f"{cols} x {rows}: its header (SIZ segment) is damaged"
    )


def _check_frames(rel_path: str, ds: Any, syntax: str) -> None:
    """Raise TruncatedPixelDataError when a decoded JPEG / JPEG 2000 frame's stream was incomplete."""
    problem = _frames_problem(ds, syntax)
    if problem not in ("", "?"):
        raise _stream_error(rel_path, problem + " (the decoder filled in the missing part)")


def _stream_error(rel_path: str, problem: str) -> TruncatedPixelDataError | PixelDecodeError:
    """TruncatedPixelDataError for a stream that ends early, PixelDecodeError for other damage."""
    if "truncated" in problem or " ends " in problem:
        return TruncatedPixelDataError(
            rel_path,
            f"pixel data is truncated or damaged: {problem}",
            "the transfer was cut off or the file is damaged; copy the file again from the source",
        )
    return PixelDecodeError(
        rel_path,
        f"pixel data is damaged: {problem}",
        "copy the file again from the source; if the source copy is the same, re-export the image "
        "from the modality or PACS",
    )


def _syntax_name(uid: str) -> str:
    from pydicom.uid import UID

    if uid and not re.fullmatch(r"[0-9.]{1,64}", uid):  # not a UID: junk text, never echoed
        return "that is not a valid UID"
    name = UID(uid).name if uid else ""
    return f"{name} ({uid})" if name and name != uid else uid or "unknown"


def _plugin_message(exc: BaseException, plugin: str) -> str:
    """The line of pydicom's "all plugins failed" message that names ``plugin``, else the whole text."""
    text = str(exc)
    for line in text.splitlines():
        if line.strip().startswith(f"{plugin}:"):
            return library_message(Exception(line.split(":", 1)[1]))
    return library_message(exc)


def _raise_decode(rel_path: str, inst: DicomInstance, exc: BaseException, path: Path | None = None) -> None:
    """Raise the InputError that says why ``inst``'s pixel data could not be decoded, and how to fix it.

    A 12-bit JPEG (JPEG Extended) is named as such: Pillow and pydicom's GDCM plugin decode only 8-bit
    JPEG, so the only decoder is pylibjpeg-libjpeg; a stream that is complete but that it rejects is
    not a damaged copy and the fix names converters that decode it. For JPEG and JPEG 2000 syntaxes the
    frames' structure tells a cut-off stream (TruncatedPixelDataError) from one the decoders refuse.
    """
    syntax = inst.transfer_syntax_uid or ""
    problem = _frames_problem(path, syntax) if decode_error_type(exc) != "TruncatedPixelDataError" else "?"
    if problem not in ("", "?"):
        raise _stream_error(rel_path, problem) from exc
    if decode_error_type(exc) == "TruncatedPixelDataError":
        raise TruncatedPixelDataError(
            rel_path,
            f"pixel data is truncated or shorter than the header says ({library_message(exc)})",
            "the transfer was cut off; copy the file again from the source",
        ) from exc
    if syntax == _JPEG12 and (inst.bits_stored or 8) > 8:
        from importlib.util import find_spec

        what = f"12-bit JPEG pixel data (JPEG Extended, transfer syntax {syntax})"
        if find_spec("libjpeg") is None:
            raise PixelDecodeError(
                rel_path,
                f"cannot decode pixel data: {what}; the installed decoders (Pillow, GDCM) decode 8-bit "
                "JPEG only and pylibjpeg-libjpeg, which decodes 12-bit JPEG, is not installed",
                "pip install pylibjpeg pylibjpeg-libjpeg (part of medmm[imaging]) and re-run",
            ) from exc
        whole = " (every frame reaches its end-of-image marker: not a cut-off copy)" if problem == "" else ""
        raise PixelDecodeError(
            rel_path,
            f"cannot decode pixel data: {what} that the installed decoders cannot read: Pillow decodes "
            f"8-bit JPEG only and pylibjpeg-libjpeg rejects this stream "
            f"({_plugin_message(exc, 'pylibjpeg')}){whole}",
            "decompress the file with dcmtk's `dcmdjpeg IN OUT` or GDCM's `gdcmconv --raw IN OUT` (both "
            "decode such 12-bit streams; pydicom's own GDCM plugin refuses 12-bit JPEG) and ingest "
            "the result",
        ) from exc
    missing = "missing dependencies" in str(exc) or "no pixel data handlers" in str(exc).lower()
    raise PixelDecodeError(
        rel_path,
        f"cannot decode pixel data with transfer syntax {_syntax_name(syntax)} "
        f"({type(exc).__name__}: {library_message(exc)})",
        "pip install the decoder packages named above (medmm[imaging] has pylibjpeg-libjpeg, "
        "-openjpeg and -rle) and re-run"
        if missing
        else "install the decoder for this syntax (pylibjpeg plugins / GDCM) or re-export uncompressed",
    ) from exc


def native_fast_path(insts: list[DicomInstance]) -> bool:
    """True when every slice is uncompressed single-frame monochrome Pixel Data of one size.

    >>> inst = DicomInstance(path="a", sop_instance_uid="1", kind="image", rows=2, columns=2,
    ...     bits_allocated=16, bits_stored=12, pixel_representation=0, pixel_offset=300,
    ...     photometric_interpretation="MONOCHROME2", transfer_syntax_uid="1.2.840.10008.1.2.1")
    >>> native_fast_path([inst]), native_fast_path([inst.model_copy(update={"pixel_offset": None})])
    (True, False)
    """
    from medmm.imaging.dicom_header import NATIVE_SYNTAXES

    if not insts:
        return False
    size = (insts[0].rows, insts[0].columns)
    if any(i.bits_allocated not in (8, 16, 32) for i in insts):
        return False
    dtype = _stored_dtype(insts[0])
    return all(
        i.pixel_offset is not None
        and i.transfer_syntax_uid in NATIVE_SYNTAXES
        and i.n_frames == 1
        and i.samples_per_pixel == 1
        and i.photometric_interpretation in ("MONOCHROME1", "MONOCHROME2")
        and i.pixel_representation in (0, 1)
        and _stored_dtype(i) == dtype
        # 8-bit big endian OW data is stored as byte-swapped words; pydicom handles it
        and not (i.bits_allocated == 8 and i.transfer_syntax_uid == "1.2.840.10008.1.2.2")
        and (i.rows, i.columns) == size
        and i.rows
        and i.columns
        and not i.is_mosaic
        for i in insts
    )


def _stored_dtype(inst: DicomInstance) -> np.dtype:
    order = ">" if inst.transfer_syntax_uid == "1.2.840.10008.1.2.2" else "<"
    kind = "i" if inst.pixel_representation == 1 else "u"
    return np.dtype(f"{order}{kind}{(inst.bits_allocated or 16) // 8}")


def read_native_stack(archive_root: Path, insts: list[DicomInstance]) -> np.ndarray:
    """Uncompressed slices (see :func:`native_fast_path`) as one ``[column, row, slice]`` array.

    Each file's Pixel Data is read at the offset the header scan found (``DicomInstance.pixel_offset``).
    With fewer stored than allocated bits, signed values are sign-extended from BitsStored and unsigned
    ones masked, as ``Dataset.pixel_array`` does (tested on files whose unused high bits are set). When
    any slice
    has RescaleSlope/Intercept the stack is ``float32(stored) * slope + intercept`` slice by slice (the
    arithmetic of MONAI's PydicomReader); otherwise the stored values and integer type are kept.
    The array is Fortran-ordered, the layout NIfTI files are written in.

    >>> read_native_stack(Path("."), [])
    Traceback (most recent call last):
    ...
    ValueError: read_native_stack: no slices given
    """
    if not insts:
        raise ValueError("read_native_stack: no slices given")
    first = insts[0]
    rows, cols = int(first.rows or 0), int(first.columns or 0)
    stored = _stored_dtype(first)
    nbytes = rows * cols * stored.itemsize
    rescale = any(i.rescale_slope is not None or i.rescale_intercept is not None for i in insts)
    out_dtype = np.dtype(np.float32) if rescale else stored.newbyteorder("=")
    out = np.empty((cols, rows, len(insts)), dtype=out_dtype, order="F")
    # stored values already in the output type go straight from the file into their slice of ``out``
    # (``out[:, :, k].T`` is a C-ordered [row, column] view: the file's pixel order); others are read
    # into one reused buffer and converted from there
    direct = not rescale and stored == out_dtype
    scratch = None if direct else np.empty((rows, cols), dtype=stored)
    for k, inst in enumerate(insts):
        arr = out[:, :, k].T if direct else scratch
        assert arr is not None
        got = _read_at(archive_root / inst.path, int(inst.pixel_offset or 0), arr)
        if got < nbytes:
            raise TruncatedPixelDataError(
                inst.path,
                f"pixel data is truncated: {rows}x{cols} pixels need {nbytes} bytes but the file holds {got}",
                "the transfer was cut off; copy the file again from the source",
            )
        placed = direct
        bits, alloc = inst.bits_stored, int(inst.bits_allocated or 16)
        if bits and 0 < bits < alloc:  # bits above BitsStored: as Dataset.pixel_array treats them
            if inst.pixel_representation == 1:  # sign-extend from BitsStored
                shift = alloc - bits
                arr = (arr.astype(arr.dtype.newbyteorder("=")) << shift) >> shift
                placed = False
            elif direct:  # mask them off, in place
                np.bitwise_and(arr, np.array((1 << bits) - 1, dtype=arr.dtype), out=arr)
            else:
                arr = arr & np.array((1 << bits) - 1, dtype=arr.dtype)
        if rescale:
            slope = inst.rescale_slope if inst.rescale_slope is not None else 1.0
            intercept = inst.rescale_intercept or 0.0
            out[:, :, k] = (arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)).T
        elif not placed:
            out[:, :, k] = arr.T
    return out


def _read_at(path: Path, offset: int, dest: np.ndarray) -> int:
    """Read up to ``dest.nbytes`` bytes of ``path`` from ``offset`` into C-contiguous ``dest``.

    One ``preadv`` into the array's memory (no intermediate bytes object); returns the bytes read,
    fewer only when the file ends first.
    """
    view = dest.data.cast("B")
    fd = os.open(path, os.O_RDONLY)
    try:
        got = 0
        while got < len(view):
            n = os.preadv(fd, [view[got:]], offset + got)
            if n <= 0:
                break
            got += n
    finally:
        os.close(fd)
    return got


def read_slice(path: Path, inst: DicomInstance) -> np.ndarray:
    """One single-frame image as ``[column, row]`` (``[column, row, channel]`` for colour), rescaled.

    Monochrome data with RescaleSlope/Intercept becomes float32 (CT in Hounsfield units); data without
    rescale keeps its stored dtype.
    """
    from monai.data import PydicomReader

    reader = PydicomReader(swap_ij=True, affine_lps_to_ras=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = reader.read(str(path))
            data = np.asarray(ds.pixel_array)  # decode once here to classify decoder errors
    except Exception as exc:  # decoders raise many types; all mean "this file's pixels are unusable"
        _raise_decode(inst.path, inst, exc, path)
    _check_frames(inst.path, ds, inst.transfer_syntax_uid or "")
    if data.ndim == 2 and inst.photometric_interpretation == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        return np.ascontiguousarray(np.transpose(apply_color_lut(data, ds), (1, 0, 2)))
    if data.ndim == 2:
        # MONAI path: rescale + [column, row] layout (geometry is ours, its affine is ignored)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr, _meta = reader.get_data(ds)
        except (ValueError, TypeError, AttributeError, KeyError):
            # MONAI's affine step needs PixelSpacing/IPP/IOP; 2D images without them are rescaled here
            arr = _rescale(data, inst.rescale_slope, inst.rescale_intercept).T
        return np.asarray(arr)
    if data.ndim == 3 and inst.samples_per_pixel > 1:  # colour: [row, column, channel]
        return np.ascontiguousarray(np.transpose(data, (1, 0, 2)))
    raise PixelDecodeError(
        inst.path,
        f"unexpected pixel array shape {data.shape} for a single-frame image",
        "re-export the image",
    )


def _rescale(data: np.ndarray, slope: float | None, intercept: float | None) -> np.ndarray:
    if slope is None and intercept is None:
        return data
    return data.astype(np.float32) * np.float32(slope if slope is not None else 1.0) + np.float32(
        intercept or 0.0
    )


def read_multiframe(path: Path, inst: DicomInstance, frame_order: list[int] | None) -> np.ndarray:
    """A multi-frame object as ``[column, row, frame(, channel)]`` in ``frame_order``, rescaled.

    Enhanced objects carry RescaleSlope/Intercept per frame (Pixel Value Transformation); each frame is
    rescaled with its own values.
    """
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            data = np.asarray(ds.pixel_array)
    except Exception as exc:
        _raise_decode(inst.path, inst, exc, path)
    _check_frames(inst.path, ds, inst.transfer_syntax_uid or "")
    colour = inst.samples_per_pixel > 1
    if inst.n_frames == 1:
        data = data[None]
    slopes, intercepts = _frame_rescale(ds, inst)
    if frame_order is not None:
        data = data[frame_order]
        slopes, intercepts = [slopes[k] for k in frame_order], [intercepts[k] for k in frame_order]
    if not colour and any(s is not None or i is not None for s, i in zip(slopes, intercepts, strict=True)):
        out = np.empty(data.shape, dtype=np.float32)
        for k in range(data.shape[0]):
            out[k] = _rescale(data[k], slopes[k] if slopes[k] is not None else 1.0, intercepts[k] or 0.0)
        data = out
    axes = (2, 1, 0, 3) if colour else (2, 1, 0)
    return np.ascontiguousarray(np.transpose(data, axes))


def _frame_rescale(ds: Any, inst: DicomInstance) -> tuple[list[float | None], list[float | None]]:
    from medmm.imaging._dicom_values import as_float

    n = inst.n_frames
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    slopes: list[float | None] = [inst.rescale_slope] * n
    intercepts: list[float | None] = [inst.rescale_intercept] * n
    for k, item in enumerate(per_frame[:n]):
        seq = item.get("PixelValueTransformationSequence")
        if seq:
            slopes[k] = as_float(seq[0].get("RescaleSlope"))
            intercepts[k] = as_float(seq[0].get("RescaleIntercept"))
    return slopes, intercepts


def read_mosaic(path: Path, inst: DicomInstance) -> tuple[np.ndarray, np.ndarray]:
    """Unpack a Siemens MOSAIC image into ``[column, row, slice]`` plus its LPS voxel->world affine.

    Uses nibabel's DICOM wrapper, which reads the number of tiles and the slice normal from the Siemens
    CSA header (not available through MONAI).
    """
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nibabel.nicom import dicomwrappers

            ds = pydicom.dcmread(path)
            wrapper = dicomwrappers.wrapper_from_data(ds)
            if not isinstance(wrapper, dicomwrappers.MosaicWrapper):
                raise PixelDecodeError(
                    inst.path,
                    "ImageType says MOSAIC but the Siemens CSA header has no mosaic layout",
                    "re-export the series as separate slices (or enhanced MR)",
                )
            raw = ds.pixel_array  # decode errors (codec, truncation) are reported as such
    except PixelDecodeError:
        raise
    except Exception as exc:
        _raise_decode(inst.path, inst, exc, path)
    del raw
    _check_frames(inst.path, ds, inst.transfer_syntax_uid or "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.asarray(wrapper.get_data())  # [column, row, slice], rescaled by nibabel
            affine = np.asarray(wrapper.affine, dtype=float)  # voxel -> LPS
    except Exception as exc:
        raise _mosaic_error(inst, wrapper, exc) from exc
    return data, affine


def _mosaic_error(inst: DicomInstance, wrapper: Any, exc: BaseException) -> PixelDecodeError:
    """Why a Siemens mosaic could not be unpacked: tiles that do not divide the image evenly (which
    nibabel's unpacking requires, and dcm2niix does not), else the layout error itself."""
    rows, cols = int(inst.rows or 0), int(inst.columns or 0)
    try:
        grid, tiles = int(wrapper.mosaic_size), int(wrapper.n_mosaic)
    except Exception:  # the CSA header itself is unusable
        grid, tiles = 0, 0
    if grid and rows and cols and (rows % grid or cols % grid):
        return PixelDecodeError(
            inst.path,
            f"Siemens mosaic of {tiles} slices in a {grid} x {grid} grid whose {cols} x {rows} image is not "
            f"a whole number of tiles ({cols} / {grid} = {cols / grid:.2f}): medmm unpacks (with nibabel) "
            "only mosaics of equal tiles",
            "convert the series with dcm2niix, which unpacks such mosaics, and ingest its NIfTI; or "
            "re-export it as separate slices or enhanced MR",
        )
    return PixelDecodeError(
        inst.path,
        "the Siemens mosaic layout (CSA header) does not fit the pixel data "
        f"({type(exc).__name__}: {library_message(exc)})",
        "re-export the series as separate slices or enhanced MR",
    )
