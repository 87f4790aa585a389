"""medmm.imaging: DICOM header reading, series assembly, MONAI loading and canonical (RAS) volumes.

Plain functions (no Dask): the ingest stage calls :func:`read_dicom_header` per file,
:func:`assemble_series` per group of instances, and :func:`convert_stack` / :func:`convert_image_file`
per stack / NIfTI-ANALYZE file. :func:`plot_slice` draws a written volume's slice with a label map over
it. Policies and outputs are described in ``docs/imaging.md``.
"""

from medmm.imaging.convert import convert_image_file, convert_stack
from medmm.imaging.dicom_header import read_dicom_header
from medmm.imaging.preview import most_labelled_slice, plot_slice
from medmm.imaging.records import SCHEMAS, DicomInstance, DicomKind, SourceFormat, VolumeRecord
from medmm.imaging.series import (
    FileOutcome,
    SeriesAssembly,
    SeriesStack,
    StackProblem,
    assemble_series,
    decodable_in,
)

__all__ = [
    "SCHEMAS",
    "DicomInstance",
    "DicomKind",
    "FileOutcome",
    "SeriesAssembly",
    "SeriesStack",
    "SourceFormat",
    "StackProblem",
    "VolumeRecord",
    "assemble_series",
    "convert_image_file",
    "convert_stack",
    "decodable_in",
    "most_labelled_slice",
    "plot_slice",
    "read_dicom_header",
]
