"""The ``predictions`` table: one row per record x task label, with provenance; and the optional
``slice_predictions`` table: the per-slice scores behind a record's score (``image_input.slice: all``).

>>> PredictionRow(record_id="rec-1", task="diagnosis", label="abnormal", score=0.9, model_sha256="ab",
...               modalities="image+report", weight_image=0.7, weight_report=0.3).weight_signal is None
True
>>> SlicePredictionRow(record_id="rec-1", slice=3, task="diagnosis", label="abnormal", score=0.2,
...                    model_sha256="ab").slice
3
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from medmm.records import Record

__all__ = ["SCHEMAS", "PredictionRow", "SlicePredictionRow"]


class PredictionRow(Record):
    """A model score for one label of one record; ``weight_<m>`` are the fusion's per-sample modality
    weights (``None`` when the modality was absent or the strategy has no weights).

    With ``image_input.slice: all`` a record's image is scored slice by slice: ``score`` then combines
    its ``n_slices`` slice scores by ``slice_aggregation`` (``mean`` or ``max``) and the weights are
    averaged over the slices; both are ``None`` when the record was scored as one sample.

    ``embedding_anomaly_*`` are the record's label-free imaging anomaly score (the Mahalanobis distance
    of its image-only fused representation from the training records', higher = more anomalous), its
    flag (score above the threshold) and the threshold (set for a stated false-alarm rate; see
    :mod:`medmm.models.embedding_anomaly`); ``embedding_anomaly_calibration`` says where the threshold
    was calibrated: ``checkpoint`` (the training-time validation images) or ``site:<hash>`` (a site's
    normal studies, ``medmm predict --anomaly-calibration``; a hash of the set's image ids). The same on
    each row of the record, ``None`` for a record without an image or a checkpoint without the fitted
    statistics.
    """

    record_id: str
    task: str
    label: str
    score: float = Field(ge=0, le=1)
    model_sha256: str
    modalities: str  # modalities present in the record and used by the model, "+"-joined
    weight_image: float | None = None
    weight_report: float | None = None
    weight_signal: float | None = None
    n_slices: int | None = Field(None, ge=1)
    slice_aggregation: str | None = None
    embedding_anomaly_score: float | None = Field(None, ge=0)
    embedding_anomaly_flag: bool | None = None
    embedding_anomaly_threshold: float | None = Field(None, ge=0)
    embedding_anomaly_calibration: str | None = None


class SlicePredictionRow(Record):
    """The score of one image slice (index along the axial axis of the transformed volume) of a record,
    before aggregation; written next to ``predictions.parquet`` on request."""

    record_id: str
    slice: int = Field(ge=0)
    task: str
    label: str
    score: float = Field(ge=0, le=1)
    model_sha256: str


SCHEMAS: dict[str, type[BaseModel]] = {
    "predictions": PredictionRow,
    "slice_predictions": SlicePredictionRow,
}
