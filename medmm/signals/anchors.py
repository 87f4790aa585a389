"""Anchor tables: times to cut windows around (imaging study times, alarms, clinical events).

A CSV (or Parquet) with a ``label`` column and either ``record`` + ``time_s`` (seconds from that
record's start) or ``patient_id`` + ``time`` (a pseudonymous patient id and a *shifted* ISO date-time,
e.g. ``study_time`` from the imaging stage's ``volumes.parquet``). A ``patient_id`` that is not a
pseudonym (``pat-...``), e.g. a hospital id, is refused without being echoed: it would match no record
and be copied into ``run.json``. Patient anchors apply to every
record of that patient whose span covers the time.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "anchors.csv"
>>> rows = ["label,record,time_s,patient_id,time", "ct,,,pat-1,1999-01-01T00:00:10", "vt,100,12.5,,"]
>>> _ = p.write_text("\\n".join(rows) + "\\n")
>>> [(a.label, a.record, a.time_s, a.abs_time_s) for a in read_anchors(p)]
[('ct', None, None, 915148810.0), ('vt', '100', 12.5, None)]
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from medmm.errors import ConfigError
from medmm.signals.align import epoch_seconds
from medmm.signals.process import Anchor

__all__ = ["read_anchors"]


def _text(v: object) -> str | None:
    return None if v is None or (isinstance(v, float) and v != v) or str(v).strip() == "" else str(v).strip()


def read_anchors(path: Path) -> tuple[Anchor, ...]:
    """Read an anchor table (see module doc); raises :class:`~medmm.errors.ConfigError` when malformed."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, dtype=str)
    if "label" not in frame.columns:
        raise ConfigError(
            f"{path}: anchor table needs a 'label' column (and record+time_s or patient_id+time)"
        )
    out = []
    for i, row in enumerate(frame.to_dict(orient="records"), start=2):
        label = _text(row.get("label")) or "anchor"
        record, t = _text(row.get("record")), _text(row.get("time_s"))
        pid, when = _text(row.get("patient_id")), _text(row.get("time"))
        if record and t:
            out.append(Anchor(label=label, record=record, time_s=float(t)))
        elif pid and when:
            if not pid.startswith("pat-"):  # a hospital id: it would match nothing and land in run.json
                raise ConfigError(
                    f"{path}: line {i}: patient_id is not a medmm pseudonym (pat-...); use the patient_id "
                    "of signals.parquet or volumes.parquet (the same site key), never the hospital's id"
                )
            try:
                abs_s = epoch_seconds(datetime.fromisoformat(when).replace(tzinfo=None))
            except ValueError as exc:
                raise ConfigError(  # the cell is not quoted: a misplaced column can hold anything
                    f"{path}: line {i}: column 'time' is not an ISO date-time (e.g. 2024-01-05T10:00:00)"
                ) from exc
            out.append(Anchor(label=label, patient_id=pid, abs_time_s=abs_s))
        else:
            raise ConfigError(f"{path}: line {i}: give record+time_s or patient_id+time")
    return tuple(out)
