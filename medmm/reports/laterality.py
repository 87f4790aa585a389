"""Side checks for ``entities.location``: a finding written with its own side ("a left pleural
effusion", "effusion on the left") never takes the location of the other side.

``location`` is the nearest ANATOMY entity of the sentence, so in "Opacity in the right lower lobe and
a left pleural effusion" the effusion was placed in the right lower lobe. :func:`clear_side_conflicts`
empties such a location (null: the sentence names no anatomy of the finding's side). The parse stage
(:func:`medmm.reports.pipeline.parse_columns`) applies it to the entity table after the rows are made,
so the rows of both row builders (``batch_extract`` and its ``extract.doc_records`` fallback) get the
same rule; ``doc_records`` / ``doc_rows`` / ``batch_tables`` called alone do not apply it.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["clear_side_conflicts", "finding_side", "location_side"]

# a side word up to three words before the finding ("left pleural effusion", "right-sided small
# effusion"), or "on/in/at the left|right" right after it
_BEFORE = re.compile(
    r"\b(left|right|bilateral|bilaterally|both)(?:[- ]sided)?(?:\s+[a-z/-]+){0,3}\s*$", re.IGNORECASE
)
_AFTER = re.compile(r"^\s*(?:,\s*)?(?:on|in|at|of)\s+the\s+(left|right)\b", re.IGNORECASE)
_STOP = re.compile(r"[.;,:\n]|\b(?:and|or|with|in|of|at|to|from)\b", re.IGNORECASE)
_LEFT_NAMES = {"lingula"}


def finding_side(text: str, start: int, end: int) -> str | None:
    """The side the report gives a finding at characters ``[start, end)``: ``left``, ``right``,
    ``bilateral`` or ``None``. The side word must be in the finding's own phrase (no punctuation,
    "and", "in" ... between).

    >>> t = "Opacity in the right lower lobe and a left pleural effusion."
    >>> finding_side(t, t.index("pleural"), t.index("pleural") + 16), finding_side(t, 0, 7)
    ('left', 'right')
    >>> finding_side("Effusion on the left.", 0, 8)
    'left'
    """
    before = text[max(0, start - 60) : start]
    m = _BEFORE.search(before)
    if m is not None and not _STOP.search(before[m.end(1) :]):
        side = m.group(1).lower()
        return "bilateral" if side in {"bilateral", "bilaterally", "both"} else side
    after = _AFTER.match(text[end : end + 30])
    return after.group(1).lower() if after is not None else None


def location_side(location: str) -> str | None:
    """``left`` / ``right`` for a location name of one side, else ``None``.

    >>> location_side("right lower lobe"), location_side("lingula"), location_side("lungs")
    ('right', 'left', None)
    """
    low = location.lower()
    if low.startswith("left") or low in _LEFT_NAMES:
        return "left"
    if low.startswith("right"):
        return "right"
    return None


def clear_side_conflicts(entities: pa.Table, ids: list[str], texts: list[str]) -> pa.Table:
    """``entities`` with ``location`` emptied where the finding's own side is another than the
    location's (a bilateral finding takes no one-sided location).

    Parameters
    ----------
    entities
        Entity rows (``report_id``, ``start``, ``end``, ``label``, ``location``) of reports ``ids``.
    ids, texts
        The reports' ids and the texts the offsets point into.

    >>> t = pa.table({"report_id": ["a"], "start": [43], "end": [59], "label": ["FINDING"],
    ...               "location": ["right lower lobe"]})
    >>> clear_side_conflicts(t, ["a"], ["Opacity in the right lower lobe and a left pleural effusion."])[
    ...     "location"].to_pylist()
    [None]
    """
    if entities.num_rows == 0:
        return entities
    loc = entities["location"]
    candidates = np.flatnonzero(
        pc.fill_null(pc.and_(pc.is_valid(loc), pc.not_equal(entities["label"], "ANATOMY")), False).to_numpy(
            zero_copy_only=False
        )
    )
    if not len(candidates):
        return entities
    text_of = dict(zip(ids, texts, strict=True))
    rep = entities["report_id"].to_pylist()
    starts = entities["start"].to_pylist()
    ends = entities["end"].to_pylist()
    locs = loc.to_pylist()
    cleared = []
    for i in candidates.tolist():
        where = location_side(locs[i])
        if where is None:
            continue
        side = finding_side(text_of[rep[i]], starts[i], ends[i])
        if side is not None and side != where:
            cleared.append(i)
    if not cleared:
        return entities
    for i in cleared:
        locs[i] = None
    col = entities.schema.get_field_index("location")
    return entities.set_column(
        col, entities.schema.field(col), pa.array(locs, entities.schema.field(col).type)
    )
