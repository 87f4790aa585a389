"""Benchmark archives: the real uncompressed DICOM series of ``shared/data`` replicated to N slices.

Each generated series copies the slices of one real series (cycled) with fresh, seeded Study/Series/SOP
Instance UIDs and evenly spaced slice positions (see :func:`medmm.ingest.sample.replicate_series`), so
series assembly, decoding and writing do the same work as on the originals, at any size.
"""

from __future__ import annotations

from pathlib import Path

from medmm.datasets import shared_data_dir
from medmm.ingest.sample import replicate_series

#: Real uncompressed MR series (Siemens, Philips, generic) from the dicom2nifti test data.
TEMPLATE_SERIES = (
    "imaging/dicom2nifti_series/siemens/anatomical/001",
    "imaging/dicom2nifti_series/philips/anatomical/001",
    "imaging/dicom2nifti_series/generic/anatomical/001",
)


def template_series() -> list[list[Path]]:
    """The slices of each template series (raises when the shared data is absent)."""
    root = shared_data_dir()
    if root is None:
        raise FileNotFoundError(
            "shared data not found: set MEDMM_DATA or place shared/data beside the checkout"
        )
    return [sorted((root / rel).glob("*.dcm")) for rel in TEMPLATE_SERIES]


def make_archive(dest: Path, n_slices: int, *, slices_per_series: int = 100, seed: int = 0) -> Path:
    """Write ``n_slices`` slices as series of ``slices_per_series``, cycling over the template series.

    >>> make_archive(Path("/tmp/a"), 200)  # doctest: +SKIP
    PosixPath('/tmp/a')
    """
    templates = template_series()
    n_series = -(-n_slices // slices_per_series)
    for s in range(n_series):
        count = min(slices_per_series, n_slices - s * slices_per_series)
        replicate_series(
            templates[s % len(templates)],
            dest / f"src{s % len(templates)}" / f"s{s:05d}",
            count,
            seed=seed * 100_003 + s,
        )
    return dest
