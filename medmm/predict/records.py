"""The ``predictions`` table: one row per record x task label, with provenance.

>>> PredictionRow(record_id="rec-1", task="diagnosis", label="abnormal", score=0.9, model_sha256="ab",
...               modalities="image+report", weight_image=0.7, weight_report=0.3).weight_signal is None
True
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from medmm.records import Record

__all__ = ["SCHEMAS", "PredictionRow"]


class PredictionRow(Record):
    """A model score for one label of one record; ``weight_<m>`` are the fusion's per-sample modality
    weights (``None`` when the modality was absent or the strategy has no weights)."""

    record_id: str
    task: str
    label: str
    score: float = Field(ge=0, le=1)
    model_sha256: str
    modalities: str  # modalities present in the record and used by the model, "+"-joined
    weight_image: float | None = None
    weight_report: float | None = None
    weight_signal: float | None = None


SCHEMAS: dict[str, type[BaseModel]] = {"predictions": PredictionRow}
