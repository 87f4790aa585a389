"""The side rule of :mod:`medmm.reports.laterality` on a whole batch's entity table, at the rows it can
change only (the ``parse`` fast path).

:func:`~medmm.reports.laterality.clear_side_conflicts` empties ``location`` where a finding written with
its own side has the other side's location. Called on a batch's whole entity table it turns the
table's columns into Python lists (~40k rows per 10k reports), which cost ~4% of the CPU of
``nlp.pipe`` of the same reports. Only a row with a location that names one side can conflict with
the finding's side (:func:`~medmm.reports.laterality.location_side`; an empty location stays empty), and
those are few (~6% of the IU reports' entities): :func:`clear_side_conflicts_batch` picks them with
Arrow, judging each distinct location name once, runs ``clear_side_conflicts`` on them alone and puts
their locations back. Same result (tested on the IU reports, whose table it must equal).

>>> import pyarrow as pa
>>> t = "Opacity in the right lower lobe and a left pleural effusion."
>>> ents = pa.table({"report_id": ["a", "a"], "start": [0, 43], "end": [7, 59],
...                  "label": ["FINDING", "FINDING"], "location": ["right lower lobe"] * 2})
>>> clear_side_conflicts_batch(ents, ["a"], [t])["location"].to_pylist()
['right lower lobe', None]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["clear_side_conflicts_batch"]


def clear_side_conflicts_batch(entities: pa.Table, ids: list[str], texts: list[str]) -> pa.Table:
    """:func:`~medmm.reports.laterality.clear_side_conflicts` of ``entities``, applied to the rows whose
    location names a side (see the module docstring); the other rows are left as they are.

    Parameters
    ----------
    entities
        A batch's entity table (``report_id``, ``start``, ``end``, ``label``, ``location`` ...).
    ids, texts
        The batch's report ids and the texts the offsets point into.

    >>> ents = pa.table({"report_id": ["a"], "start": [0], "end": [8], "label": ["FINDING"],
    ...                  "location": ["lungs"]})
    >>> clear_side_conflicts_batch(ents, ["a"], ["Effusion on the left."]) is ents  # no side: kept
    True
    """
    from medmm.reports.laterality import clear_side_conflicts, location_side

    if entities.num_rows == 0:
        return entities
    loc = entities["location"].combine_chunks()
    codes = pc.dictionary_encode(loc)
    names = codes.dictionary.to_pylist()
    sided = np.array([location_side(v) is not None for v in names] + [False], dtype=bool)
    index = codes.indices.fill_null(len(names)).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(sided[index])
    if not len(rows):
        return entities
    picked = entities.take(pa.array(rows))  # every column: the rule may read any (e.g. laterality)
    done = clear_side_conflicts(picked, ids, texts)
    if done is picked:
        return entities
    cleared = np.zeros(entities.num_rows, dtype=bool)
    cleared[rows] = pc.is_null(done["location"]).to_numpy(zero_copy_only=False)
    col = entities.schema.get_field_index("location")
    field = entities.schema.field(col)
    new = pc.if_else(pa.array(cleared), pa.scalar(None, field.type), loc)
    return entities.set_column(col, field, new)
