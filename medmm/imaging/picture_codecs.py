"""Pictures Pillow cannot decode exactly: JPEG 2000, and JPEG beyond 8-bit samples (12/16-bit, JPEG-LS).

Pillow's JPEG 2000 reader scales 9- to 15-bit samples up to 16 bits (a 12-bit 4095 comes out as 65520)
and reads signed samples as unsigned; its JPEG reader decodes 8-bit samples only and does not know
JPEG-LS (it calls such files "cannot identify", which is not damage). These pictures are decoded here
by the pylibjpeg plugins that pydicom uses for the same codestreams inside DICOM: pylibjpeg-openjpeg
(JPEG 2000) and pylibjpeg-libjpeg (12/16-bit and lossless JPEG, JPEG-LS). Both return the stored
sample values exactly, signed or not.

libjpeg decodes a cut-off stream without complaint (it fills in what is missing) and OpenJPEG's
message for one says nothing about truncation, so the stream's structure is checked first
(:mod:`medmm.imaging.picture_streams`).

>>> import tempfile, openjpeg
>>> p = Path(tempfile.mkdtemp()) / "cr.j2k"
>>> _ = p.write_bytes(openjpeg.encode(np.full((32, 32), 4095, np.uint16), bits_stored=12))
>>> int(read_jpeg2000(p, "cr.j2k").samples.max())  # Pillow: 65520
4095
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medmm.imaging.errors import CorruptImageError, ImageTooLargeError, UnsupportedImageError
from medmm.imaging.picture_streams import (
    JpegFrame,
    j2k_codestream,
    j2k_info,
    j2k_problem,
    jpeg_problem,
    tiff_layout,
)

__all__ = ["ExactPicture", "read_exact_jpeg", "read_jpeg2000", "refuse_tiff_layout"]


@dataclass(frozen=True)
class ExactPicture:
    """Samples decoded by a pylibjpeg plugin, as stored: ``[row, column(, channel)]``.

    ``mode`` describes the samples (``"1 x 12-bit unsigned"``), ``decoder`` names the plugin.
    """

    samples: np.ndarray
    precision: int
    mode: str
    decoder: str


def _corrupt(rel: str, what: str, problem: str) -> CorruptImageError:
    return CorruptImageError(
        rel,
        f"cannot decode the {what} picture: {problem}",
        "copy the file again from the source (or re-export it); a partial copy cannot be repaired",
    )


def _check_size(rel: str, what: str, rows: int, columns: int) -> None:
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and rows * columns > 2 * limit:
        raise ImageTooLargeError(
            rel,
            f"{what} picture declares {rows * columns} pixels ({columns} x {rows}), more than Pillow's "
            f"decompression-bomb limit of {2 * limit} that medmm applies to every picture",
            "if it is a genuine picture (not a damaged header), downsample or tile it before ingest; "
            "whole-slide scans need a slide reader (e.g. OpenSlide), not medmm ingest",
        )


def read_jpeg2000(path: Path, rel: str) -> ExactPicture | None:
    """Decode a JP2 file or J2K codestream exactly; ``None`` for 8-bit colour, which Pillow decodes.

    The structure is checked first (:func:`j2k_codestream`, :func:`j2k_problem`), so a cut-off file
    is reported as truncated. Grey (and grey + alpha) pictures of any bit depth and colour deeper than
    8 bits are decoded by pylibjpeg-openjpeg, keeping the stored values and their sign; 8-bit colour is
    left to Pillow (``None``), which also converts sYCC to RGB.

    Raises
    ------
    CorruptImageError
        Truncated or damaged file.
    ImageTooLargeError
        Declared size above the decompression-bomb limit.
    UnsupportedImageError
        Components of different bit depths or subsampled, colour spaces other than RGB deeper than 8
        bits, or pylibjpeg-openjpeg not installed.

    >>> import tempfile, openjpeg
    >>> p = Path(tempfile.mkdtemp()) / "x.jp2"
    >>> grey12 = np.arange(0, 4096, 4, dtype=np.uint16).reshape(32, 32)  # 12-bit samples
    >>> _ = p.write_bytes(openjpeg.encode(grey12, bits_stored=12, codec_format=1))  # a JP2 file
    >>> pic = read_jpeg2000(p, "x.jp2")
    >>> pic.samples[-1, -3:].tolist(), pic.mode  # Pillow would give 65472 for 4092
    ([4084, 4088, 4092], '1 x 12-bit unsigned')
    """
    what = "JPEG 2000"
    with open(path, "rb") as fh:
        data = fh.read()
    code, problem = j2k_codestream(data)
    if problem:
        raise _corrupt(rel, what, problem)
    try:
        info = j2k_info(code)
    except ValueError as exc:
        raise _corrupt(rel, what, f"{exc}: the file is damaged") from exc
    problem = j2k_problem(code)
    if problem:
        raise _corrupt(rel, what, problem)
    _check_size(rel, what, info.rows, info.columns)
    if info.components >= 3 and info.precision == 8 and not info.signed:
        return None
    if not info.uniform:
        raise UnsupportedImageError(
            rel,
            f"{info.describe()} picture with {info.components} components of different bit depths or "
            "subsampled components, which medmm does not turn into grey values exactly",
            "re-export it as 8- or 16-bit grayscale (JPEG 2000, PNG or TIFF)",
        )
    try:
        import openjpeg
    except ImportError as exc:
        raise UnsupportedImageError(
            rel,
            f"{info.describe()} picture: decoding it exactly needs pylibjpeg-openjpeg, which is not "
            "installed (Pillow rescales JPEG 2000 samples of 9 to 15 bits and reads signed ones as unsigned)",
            "pip install pylibjpeg-openjpeg (part of medmm[imaging]) and re-run",
        ) from exc
    try:
        if info.components >= 3:
            space = str(openjpeg.get_parameters(data).get("colourspace", ""))
            if space not in ("unknown", "unspecified", "sRGB"):
                raise UnsupportedImageError(
                    rel,
                    f"{info.describe()} picture in colour space {space} with more than 8 bits per sample, "
                    "which medmm does not convert to grey",
                    "re-export it as 16-bit grayscale (JPEG 2000, PNG or TIFF) or 8-bit RGB",
                )
        samples = np.asarray(openjpeg.decode(data))
    except UnsupportedImageError:
        raise
    except (RuntimeError, ValueError, MemoryError) as exc:
        raise UnsupportedImageError(
            rel,
            f"{info.describe()} picture whose codestream is complete but that OpenJPEG cannot decode "
            f"({type(exc).__name__}: {' '.join(str(exc).split())})",
            "re-export it (JPEG 2000 part 1, or 16-bit grayscale PNG/TIFF); if another copy decodes, "
            "copy the file again",
        ) from exc
    sign = "signed" if info.signed else "unsigned"
    return ExactPicture(
        samples, info.precision, f"{info.components} x {info.precision}-bit {sign}", "pylibjpeg-openjpeg"
    )


def read_exact_jpeg(path: Path, rel: str, frame: JpegFrame) -> ExactPicture:
    """Decode a JPEG that Pillow cannot (12/16-bit samples, JPEG-LS ...) with pylibjpeg-libjpeg.

    Only grayscale pictures are decoded (X-ray and CT exports); the stream must reach its EOI marker
    (:func:`jpeg_problem`), because libjpeg fills in what a cut-off stream lacks.

    Raises
    ------
    CorruptImageError
        Truncated or damaged stream.
    ImageTooLargeError
        Declared size above the decompression-bomb limit.
    UnsupportedImageError
        pylibjpeg-libjpeg not installed, several colour components, or a stream libjpeg refuses: the
        reason says which decoders were tried and why neither reads it.
    """
    what = frame.describe()
    with open(path, "rb") as fh:
        data = fh.read()
    problem = jpeg_problem(data)
    if problem:
        raise _corrupt(rel, what, problem)
    _check_size(rel, what, frame.rows, frame.columns)
    if frame.components != 1:
        raise UnsupportedImageError(
            rel,
            f"{what} picture with {frame.components} colour components: Pillow cannot decode it, and medmm "
            "decodes JPEG beyond Pillow's (12/16-bit, lossless beyond 8 bits, JPEG-LS) in grayscale only",
            "re-export it as 16-bit grayscale PNG or TIFF (or 8-bit colour JPEG)",
        )
    try:
        import libjpeg
    except ImportError as exc:
        raise UnsupportedImageError(
            rel,
            f"{what} picture: Pillow decodes only 8-bit JPEG, and pylibjpeg-libjpeg, which decodes "
            "this one, is not installed",
            "pip install pylibjpeg-libjpeg (part of medmm[imaging]) and re-run",
        ) from exc
    try:
        samples = np.asarray(libjpeg.decode(data))
    except (RuntimeError, ValueError, MemoryError) as exc:
        raise UnsupportedImageError(
            rel,
            f"{what} picture that the installed decoders cannot read: Pillow decodes only 8-bit JPEG and "
            f"pylibjpeg-libjpeg rejects this stream ({' '.join(str(exc).split())}); the stream is "
            "complete (it reaches its end-of-image marker), so it is not a cut-off copy",
            "re-export it from its source as 16-bit grayscale PNG or TIFF; for a stream taken out of a DICOM "
            "file, decompress the DICOM file itself with dcmtk's `dcmdjpeg IN OUT` or GDCM's "
            "`gdcmconv --raw IN OUT` (both decode such streams) and ingest that",
        ) from exc
    return ExactPicture(samples, frame.precision, f"1 x {frame.precision}-bit unsigned", "pylibjpeg-libjpeg")


def refuse_tiff_layout(path: Path, rel: str, exc: BaseException) -> None:
    """A TIFF whose first IFD reads fine but that Pillow cannot identify stores its samples in a layout
    Pillow does not decode (64-bit float, unusual bit depths, compressions): say so instead of
    "truncated or damaged"."""
    if type(exc).__name__ != "UnidentifiedImageError":
        return
    try:
        layout = tiff_layout(path)
    except OSError:
        return
    if layout is None:
        return
    raise UnsupportedImageError(
        rel,
        f"TIFF picture stored as {layout.describe()}, a layout Pillow does not decode (its header reads "
        "fine, so it is not a damaged copy)",
        "re-save it as 8- or 16-bit integer or 32-bit float grayscale TIFF/PNG (or as NIfTI), e.g. with "
        "tifffile or ImageJ/Fiji",
    ) from exc
