"""The ``records`` table: one row per (pseudonymized) patient + study with each modality's item id,
an availability mask (``has_<modality>``) and labels (a JSON object ``label -> 0/1/null``).

>>> r = RecordRow(record_id="rec-1", patient_id="pat-1", study_id="stu-1", image_id="vol-1", has_image=True)
>>> r.available()
['image']
"""

from __future__ import annotations

from pydantic import BaseModel

from medmm.records import Record

__all__ = ["MODALITIES", "SCHEMAS", "RecordRow"]

#: Modalities in availability-mask column order.
MODALITIES: tuple[str, ...] = ("image", "report", "signal")


class RecordRow(Record):
    """One multimodal record (a study of one patient); never mixes patients."""

    record_id: str
    patient_id: str
    study_id: str
    study_time: str | None = None
    image_id: str | None = None
    report_id: str | None = None
    signal_id: str | None = None
    has_image: bool = False
    has_report: bool = False
    has_signal: bool = False
    labels: str = "{}"
    #: how the record's report was attached to the study: ``uid`` (its StudyInstanceUID), ``accession``
    #: (its accession number is on the study's images), ``date`` (the nearest study of the patient
    #: within ``--report-window`` of the report date, no other as near), ``only_study`` (a report
    #: without study id or date, its patient's only study); ``None``: the report forms the record
    #: itself, or there is no report
    report_link: str | None = None
    #: ``"datetime"``, or ``"date"`` when ``study_time`` is a date without a time of day (its midnight is
    #: no time: joins compare it as a whole day); ``None`` without a time
    study_time_precision: str | None = None

    def available(self) -> list[str]:
        """Names of the modalities present in this record, in :data:`MODALITIES` order."""
        return [m for m in MODALITIES if getattr(self, f"has_{m}")]


SCHEMAS: dict[str, type[BaseModel]] = {"records": RecordRow}
