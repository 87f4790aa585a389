"""Tables the models stage writes: ``splits`` (which record was in which split of which fold).

>>> SplitRow(record_id="rec-1", patient_id="pat-1", split="test", fold=0).split
'test'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from medmm.records import Record

__all__ = ["SCHEMAS", "SplitRow"]


class SplitRow(Record):
    """One record's split; all records of a patient share the split of a fold."""

    record_id: str
    patient_id: str
    split: Literal["train", "val", "test"]
    fold: int = 0


SCHEMAS: dict[str, type[BaseModel]] = {"splits": SplitRow}
