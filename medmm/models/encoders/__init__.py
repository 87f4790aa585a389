"""Per-modality encoders: imaging (MONAI), reports (finding vectors), signals (1D CNN / GRU)."""

from medmm.models.encoders.imaging import IMAGING_ARCHS, ImagingEncoder
from medmm.models.encoders.reports import STATUSES, ReportEncoder, finding_vector
from medmm.models.encoders.signals import SIGNAL_ARCHS, SignalEncoder

__all__ = [
    "IMAGING_ARCHS",
    "SIGNAL_ARCHS",
    "STATUSES",
    "ImagingEncoder",
    "ReportEncoder",
    "SignalEncoder",
    "finding_vector",
]
