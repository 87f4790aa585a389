"""One row per scored record and lead (``anomaly_records.parquet``): what the scorer assumed about it.

The v0.10 scorer (:mod:`medmm.anomaly.dominant`) reads a record with a normal and a premature ectopic
beat population (bigeminy, trigeminy: a high ectopic burden) differently from every other record: it
takes its references from the normal beats only. A screening user needs to see where that happened -
it is itself a finding (about a third of the beats premature with a compensatory pause) and it
changes what "unusual for this record" means. :func:`record_summary` turns the per-beat output of
:func:`medmm.anomaly.score.score_inputs` into that table, :func:`two_population_lines` into the console
lines of ``medmm anomaly score``.

>>> import numpy as np, pandas as pd
>>> keys = pd.DataFrame({"record": ["a"] * 4 + ["b"] * 2, "channel": "II", "sample": range(6)})
>>> out = {"flag": np.array([0, 1, 0, 1, 0, 0], bool), "weight": np.ones(6),
...        "two_populations": np.array([1, 1, 1, 1, 0, 0], bool),
...        "normal_ref": np.array([1, 0, 1, 0, 0, 0], bool)}
>>> record_summary(keys, out)[["record", "n_beats", "two_populations", "ectopic_share"]].to_dict("records")
[{'record': 'a', 'n_beats': 4, 'two_populations': True, 'ectopic_share': 0.5}, \
{'record': 'b', 'n_beats': 2, 'two_populations': False, 'ectopic_share': nan}]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["RECORD_COLUMNS", "record_summary", "two_population_lines"]

#: Column -> dtype of ``anomaly_records.parquet``, in order (:class:`medmm.anomaly.records.AnomalyRecordRow`).
_DTYPES: dict[str, type] = {
    "record": str,
    "patient_id": str,
    "channel": str,
    "n_beats": np.int64,
    "n_readable": np.int64,
    "n_flagged": np.int64,
    "two_populations": bool,
    "ectopic_share": np.float64,
    "reference": str,
}
#: Columns of ``anomaly_records.parquet`` in order.
RECORD_COLUMNS = tuple(_DTYPES)


def record_summary(keys: pd.DataFrame, out: dict[str, NDArray]) -> pd.DataFrame:
    """Per (record, channel): beats, readable beats (quality weight > 0), flagged beats, and whether
    the scorer found two beat populations (``two_populations``), with the share of beats outside the
    normal population (``ectopic_share``, the premature population's estimated share; null otherwise)
    and ``reference`` = ``"normal beats"`` or ``"all beats"``.

    ``keys``: one row per beat (``record``, ``channel``, optional ``patient_id``) in the order of
    ``out`` (:func:`medmm.anomaly.score.score_inputs`: ``flag``, ``weight``, and - from v0.10 -
    ``two_populations``, ``normal_ref``; absent, every record reads one population).

    >>> import numpy as np, pandas as pd
    >>> keys = pd.DataFrame({"record": ["r"] * 3, "channel": "V", "sample": [1, 2, 3]})
    >>> row = record_summary(keys, {"flag": np.zeros(3, bool), "weight": np.array([1.0, 0.0, 0.5])})
    >>> row[["n_beats", "n_readable", "reference"]].to_dict("records")
    [{'n_beats': 3, 'n_readable': 2, 'reference': 'all beats'}]
    """
    n = len(keys)
    two = np.asarray(out.get("two_populations", np.zeros(n, bool)), dtype=bool)
    normal = np.asarray(out.get("normal_ref", np.zeros(n, bool)), dtype=bool)
    beats = pd.DataFrame(
        {
            "record": keys["record"].astype(str).to_numpy(),
            "patient_id": keys["patient_id"].astype(str).to_numpy() if "patient_id" in keys else "",
            "channel": keys["channel"].astype(str).to_numpy(),
            "readable": np.asarray(out["weight"], dtype=np.float64) > 0,
            "flag": np.asarray(out["flag"], dtype=bool),
            "two": two,
            "other": two & ~normal,
        }
    )
    if beats.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    g = beats.groupby(["record", "channel"], sort=True)
    frame = g.agg(
        patient_id=("patient_id", "first"),
        n_beats=("flag", "size"),
        n_readable=("readable", "sum"),
        n_flagged=("flag", "sum"),
        two_populations=("two", "any"),
        other=("other", "sum"),
    ).reset_index()
    frame["ectopic_share"] = np.where(
        frame["two_populations"], frame["other"] / frame["n_beats"].clip(lower=1), np.nan
    )
    frame["reference"] = np.where(frame["two_populations"], "normal beats", "all beats")
    return frame.astype(_DTYPES)[list(RECORD_COLUMNS)]


def two_population_lines(records: pd.DataFrame) -> list[str]:
    """One console line per record and lead of ``records`` (:func:`record_summary`) with two beat
    populations, in the table's order.

    >>> rows = pd.DataFrame({"record": ["208"], "channel": ["MLII"], "two_populations": [True],
    ...                      "ectopic_share": [0.312]})
    >>> [line] = two_population_lines(rows)
    >>> line.split(": ")
    ['record 208 MLII', 'two beat populations (about 31% premature with a pause)', \
'references taken from the normal beats']
    """
    lines = []
    for row in records[records["two_populations"].astype(bool)].itertuples(index=False):
        lines.append(
            f"record {row.record} {row.channel}: two beat populations (about {row.ectopic_share:.0%} "
            "premature with a pause): references taken from the normal beats"
        )
    return lines
