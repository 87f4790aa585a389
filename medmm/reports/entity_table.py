"""The entity table of a batch (the ``parse`` fast path), built once in its final row order.

A batch's entity columns come as per-entity numbers (report, sentence, char span, flags) and codes into
short lists of names (section, label, finding, location, source); its measurements
(:class:`~medmm.reports.batch_measurements.BatchMeasurements`) add one ``MEASUREMENT`` row per size and
fill the measurement columns of the findings they size. The rows of each report are in (start, end)
order, entities before a measurement row with the same span, as
:func:`~medmm.reports.extract.doc_records` gives them: the row order is found first and every column
is then taken once in that order (string columns from their few names), instead of building the
entity table, adding the measurement rows and taking the whole table again.

>>> import numpy as np, pyarrow as pa
>>> cols = EntityColumns(
...     rep=np.array([0]), sentence=np.array([0]), start=np.array([8]), end=np.array([14]),
...     text=pa.array(["nodule"]), negated=np.array([False]), uncertain=np.array([False]),
...     historical=np.array([False]), family=np.array([False]),
...     label=Coded(["FINDING"], np.array([0])), finding=Coded(["nodule"], np.array([0])),
...     location=Coded([None], np.array([0])), laterality=Coded(["left", None], np.array([0])),
...     section=Coded(["BODY"], np.array([0])), source=Coded(["lexicon"], np.array([0])))
>>> entity_table(pa.array(["r1"]), cols, None).select(["text", "finding", "laterality"]).to_pylist()
[{'text': 'nodule', 'finding': 'nodule', 'laterality': 'left'}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from medmm.reports.batch_measurements import BatchMeasurements
from medmm.reports.lexicon import LEXICON_SOURCE

__all__ = ["ENTITY_SCHEMA", "Coded", "EntityColumns", "entity_table", "take_names"]

_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
#: Arrow schema of the entity rows (the columns of :class:`~medmm.reports.records.EntityRow`).
ENTITY_SCHEMA = pa.schema(
    [
        ("report_id", _S),
        ("section", _S),
        ("sentence", _I),
        ("start", _I),
        ("end", _I),
        ("text", _S),
        ("label", _S),
        ("negated", _B),
        ("uncertain", _B),
        ("historical", _B),
        ("experiencer", _S),
        ("finding", _S),
        ("long_form", _S),
        ("location", _S),
        ("laterality", _S),
        ("measurement_mm", _F),
        ("measurement_dims_mm", pa.list_(_F)),
        ("measurement_kind", _S),
        ("measurement_text", _S),
        ("source", _S),
    ]
)
_MEASUREMENT = "MEASUREMENT"
_EXPERIENCERS = ["patient", "family"]  # by the family flag (medmm.reports.context.EXPERIENCERS)


def take_names(names: Sequence[str | None], index: np.ndarray) -> pa.Array:
    """A string column: ``names[index]`` (few names, many rows; done by Arrow).

    >>> take_names(["a", None], np.array([1, 0])).to_pylist()
    [None, 'a']
    """
    return pa.array(names, _S).take(pa.array(index, _I))


@dataclass(frozen=True)
class Coded:
    """A string column as codes into ``names`` (a ``None`` name is a null)."""

    names: list[str | None]
    code: np.ndarray


@dataclass(frozen=True)
class EntityColumns:
    """One value per entity of a batch, grouped by report in report order (report = index into the
    batch's ids); ``finding`` codes may be ``-1`` (no finding); ``family`` is the experiencer (a
    relative, else the patient)."""

    rep: np.ndarray
    sentence: np.ndarray
    start: np.ndarray
    end: np.ndarray
    text: pa.Array
    negated: np.ndarray
    uncertain: np.ndarray
    historical: np.ndarray
    family: np.ndarray
    label: Coded
    finding: Coded
    location: Coded
    laterality: Coded
    section: Coded
    source: Coded


def entity_table(ids: pa.Array, c: EntityColumns, found: BatchMeasurements | None) -> pa.Table:
    """The entity rows of the batch (:data:`ENTITY_SCHEMA`), with the measurement rows of ``found``."""
    n = len(c.rep)
    sizes = found.sizes if found is not None else []
    if found is None or not sizes:
        return pa.table(
            {
                "report_id": ids.take(pa.array(c.rep, _I)),
                "section": take_names(c.section.names, c.section.code),
                "sentence": pa.array(c.sentence, _I),
                "start": pa.array(c.start, _I),
                "end": pa.array(c.end, _I),
                "text": c.text,
                "label": take_names(c.label.names, c.label.code),
                "negated": pa.array(c.negated, _B),
                "uncertain": pa.array(c.uncertain, _B),
                "historical": pa.array(c.historical, _B),
                "experiencer": take_names(_EXPERIENCERS, c.family.astype(np.int64)),
                "finding": take_names([*c.finding.names, None], _nulls_last(c.finding)),
                "long_form": pa.nulls(n, _S),
                "location": take_names(c.location.names, c.location.code),
                "laterality": take_names(c.laterality.names, c.laterality.code),
                "measurement_mm": pa.nulls(n, _F),
                "measurement_dims_mm": pa.nulls(n, pa.list_(_F)),
                "measurement_kind": pa.nulls(n, _S),
                "measurement_text": pa.nulls(n, _S),
                "source": take_names(c.source.names, c.source.code),
            },
            schema=ENTITY_SCHEMA,
        )
    n_m = len(sizes)
    m_rep = np.array(found.row_rep, dtype=np.int64)
    m_ent = np.array(found.row_entity, dtype=np.int64)
    linked = m_ent >= 0
    m_linked = m_ent[linked]  # the entities the linked measurement rows size (a batch may have none)

    def of_entity(values: np.ndarray, fill: Any) -> np.ndarray:
        """Per measurement row: the value of the entity it sizes, else ``fill``."""
        out = np.full(n_m, fill, dtype=values.dtype)
        out[linked] = values[m_linked]
        return out

    m_start = np.array([m.start for m in sizes], dtype=np.int64)
    m_end = np.array([m.end for m in sizes], dtype=np.int64)
    reps, start, end = np.r_[c.rep, m_rep], np.r_[c.start, m_start], np.r_[c.end, m_end]
    if max(start.max(), end.max()) < 1 << 21:  # one int64 key, stable: entities first
        order = np.argsort((reps << 42) | (start << 21) | end, kind="stable")
    else:
        order = np.lexsort((end, start, reps))
    at = pa.array(order, _I)
    # size of each row: the one linked to an entity, a measurement row's own, or none (-> null)
    size_of = np.full(n + n_m, n_m, dtype=np.int64)
    if found.linked:
        size_of[np.fromiter(found.linked, dtype=np.int64, count=len(found.linked))] = np.fromiter(
            found.linked.values(), dtype=np.int64, count=len(found.linked)
        )
    size_of[n:] = np.arange(n_m)
    size_of = size_of[order]
    sized = np.flatnonzero(size_of != n_m)  # rows with a size (few): the others are null
    size_idx = size_of[sized].tolist()

    def coded(col: Coded, extra: list[str | None], m_code: np.ndarray) -> pa.Array:
        names = [*col.names, *extra]
        return take_names(names, np.r_[col.code, m_code][order])

    no_finding = len(c.finding.names)
    finding_m = of_entity(_nulls_last(c.finding), no_finding)
    location_m = of_entity(c.location.code, len(c.location.names))  # -> the None appended below
    return pa.table(
        {
            "report_id": ids.take(pa.array(reps[order], _I)),
            "section": coded(c.section, list(found.row_section), len(c.section.names) + np.arange(n_m)),
            "sentence": pa.array(np.r_[c.sentence, np.array(found.row_sentence, dtype=np.int64)][order], _I),
            "start": pa.array(start[order], _I),
            "end": pa.array(end[order], _I),
            "text": pa.concat_arrays([c.text, pa.array([m.text for m in sizes], _S)]).take(at),
            "label": coded(c.label, [_MEASUREMENT], np.full(n_m, len(c.label.names))),
            "negated": pa.array(np.r_[c.negated, of_entity(c.negated, False)][order], _B),
            "uncertain": pa.array(np.r_[c.uncertain, of_entity(c.uncertain, False)][order], _B),
            "historical": pa.array(np.r_[c.historical, of_entity(c.historical, False)][order], _B),
            "experiencer": take_names(
                _EXPERIENCERS, np.r_[c.family, of_entity(c.family, False)][order].astype(np.int64)
            ),
            "finding": take_names([*c.finding.names, None], np.r_[_nulls_last(c.finding), finding_m][order]),
            "long_form": pa.nulls(n + n_m, _S),
            "location": coded(c.location, [None], location_m),
            "laterality": coded(c.laterality, [None], of_entity(c.laterality.code, len(c.laterality.names))),
            "measurement_mm": _sparse_floats(n + n_m, sized, [sizes[i].size_mm for i in size_idx]),
            "measurement_dims_mm": _sparse_lists(n + n_m, sized, [sizes[i].values_mm for i in size_idx]),
            "measurement_kind": _sparse_strings(n + n_m, sized, [sizes[i].kind for i in size_idx]),
            "measurement_text": _sparse_strings(n + n_m, sized, [sizes[i].text for i in size_idx]),
            "source": coded(c.source, [LEXICON_SOURCE], np.full(n_m, len(c.source.names))),
        },
        schema=ENTITY_SCHEMA,
    )


def _offsets(n: int, rows: np.ndarray, lengths: list[int]) -> np.ndarray:
    """int32 offsets of ``n`` values, empty but at ``rows`` (ascending) with these ``lengths``."""
    size = np.zeros(n + 1, dtype=np.int64)
    size[rows + 1] = lengths
    if size.sum() >= 1 << 31:
        raise OverflowError("column too large for 32-bit offsets")
    return np.cumsum(size).astype(np.int32)


def _validity(n: int, rows: np.ndarray) -> pa.Buffer:
    """Arrow validity bitmap: only ``rows`` set."""
    valid = np.zeros(n, dtype=bool)
    valid[rows] = True
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _sparse_strings(n: int, rows: np.ndarray, values: list[str]) -> pa.Array:
    """A string column of ``n`` nulls but ``values`` at ``rows`` (ascending), built from its buffers: a
    ``take`` of the few values costs a per-row gather over all ``n`` rows.

    >>> _sparse_strings(4, np.array([1, 3]), ["a", "bc"]).to_pylist()
    [None, 'a', None, 'bc']
    """
    data = [v.encode("utf-8", "surrogatepass") for v in values]
    offsets = _offsets(n, rows, [len(d) for d in data])
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(b"".join(data)), _validity(n, rows), n - len(values)
    )


def _sparse_floats(n: int, rows: np.ndarray, values: list[float]) -> pa.Array:
    """A float64 column of ``n`` nulls but ``values`` at ``rows``.

    >>> _sparse_floats(3, np.array([2]), [1.5]).to_pylist()
    [None, None, 1.5]
    """
    out = np.zeros(n, dtype=np.float64)
    out[rows] = values
    mask = np.ones(n, dtype=bool)
    mask[rows] = False
    return pa.array(out, _F, mask=mask)


def _sparse_lists(n: int, rows: np.ndarray, values: list[tuple[float, ...]]) -> pa.Array:
    """A list<float64> column of ``n`` nulls but ``values`` at ``rows``.

    >>> _sparse_lists(3, np.array([0, 2]), [(1.0, 2.0), (3.0,)]).to_pylist()
    [[1.0, 2.0], None, [3.0]]
    """
    offsets = _offsets(n, rows, [len(v) for v in values])
    flat = pa.array([x for v in values for x in v], _F)
    return pa.ListArray.from_buffers(
        pa.list_(_F), n, [_validity(n, rows), pa.py_buffer(offsets)], n - len(values), children=[flat]
    )


def _nulls_last(col: Coded) -> np.ndarray:
    """Codes with ``-1`` (none) as ``len(names)``."""
    return np.where(col.code < 0, len(col.names), col.code)
