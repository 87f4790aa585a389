"""medmm.imaging: DICOM header reading, series assembly, MONAI loading and canonical (RAS) volumes.

Plain functions (no Dask): the ingest stage calls :func:`read_dicom_header` per file,
:func:`assemble_series` per group of instances, and :func:`convert_stack` / :func:`convert_image_file`
per stack / NIfTI-ANALYZE file.
"""

from medmm.imaging.dicom_header import read_dicom_header
from medmm.imaging.records import SCHEMAS, DicomInstance, DicomKind, SourceFormat, VolumeRecord

__all__ = [
    "SCHEMAS",
    "DicomInstance",
    "DicomKind",
    "SourceFormat",
    "VolumeRecord",
    "read_dicom_header",
]
