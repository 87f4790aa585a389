"""medmm.align: join imaging, report and signal items per patient + study into multimodal records."""

from medmm.align.records import MODALITIES, RecordRow

__all__ = ["MODALITIES", "RecordRow"]
