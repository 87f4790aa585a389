"""The side of a finding (``entities.laterality``) and the side check of ``entities.location``: a finding
written with its own side ("a left pleural effusion", "effusion on the left", "bibasilar atelectasis")
never takes the location of the other side.

``laterality`` is ``left`` / ``right`` / ``bilateral`` when the finding's own phrase names a side
(:func:`finding_side`), else null (no side, or a finding that has none: "cardiomegaly"); it is filled
for every entity but anatomy when the rows are made (:func:`sides_of`), and a measurement row takes the
side of the finding it sizes. A side written only in the location ("opacity. It is in the lingula") is
not the finding's laterality: the location is the nearest anatomy of the sentence, which may belong to
another finding.

``location`` is the nearest ANATOMY entity of the sentence, so in "Opacity in the right lower lobe and
a left pleural effusion" the effusion was placed in the right lower lobe. :func:`clear_side_conflicts`
empties such a location (null: the sentence names no anatomy of the finding's side). The parse stage
(:func:`medmm.reports.pipeline.parse_columns`) applies it to the entity table after the rows are made,
so the rows of both row builders (``batch_extract`` and its ``extract.doc_records`` fallback) get the
same rule; ``doc_records`` / ``doc_rows`` / ``batch_tables`` called alone do not apply it.
"""

from __future__ import annotations

import re
from bisect import bisect_left

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "LATERALITIES",
    "batch_sides",
    "clear_side_conflicts",
    "finding_side",
    "location_side",
    "side_at",
    "side_word_starts",
    "sides_of",
]

#: Values of ``entities.laterality`` (or null).
LATERALITIES = ("left", "right", "bilateral")

# a side word up to three words before the finding ("left pleural effusion", "right-sided small
# effusion", "bibasilar atelectasis"), or "on/in/at the left|right" right after it
_BEFORE = re.compile(
    r"\b(left|right|bilateral|bilaterally|both|bibasilar|bibasal|biapical|bihilar)(?:[- ]sided)?"
    r"(?:\s+[a-z/-]+){0,3}\s*$",
    re.IGNORECASE,
)
_BOTH = {"bilateral", "bilaterally", "both", "bibasilar", "bibasal", "biapical", "bihilar"}
# where a side word of _BEFORE / _AFTER can start (a superset: a pre-check, the patterns decide); found
# with str.find in lower-case ASCII text, else with the zero-width pattern (every start, overlaps too)
_SIDE_PREFIXES = ("left", "right", "bilat", "both", "bibas", "biapical", "bihilar")
_SIDE_WORD = re.compile(r"(?=left|right|bilat|both|bibas|biapical|bihilar)", re.IGNORECASE)
_BEFORE_CHARS, _AFTER_CHARS = 60, 30
# after the finding: "on the left", "in both lungs", "in the bilateral lower lobes", "bilaterally",
# ", right greater than left" (group 1: a side word; group 2: the two sides compared)
_AFTER = re.compile(
    r"^\s*(?:,\s*)?(?:(?:on|in|at|of)\s+(?:the\s+)?(left|right|both|bilateral)\b|(bilaterally)\b"
    r"|((?:left|right)\s+(?:greater|more|larger|worse)\s+than\s+(?:the\s+)?(?:left|right))\b)",
    re.IGNORECASE,
)
# "left greater than right effusions": both sides have one
_GREATER = re.compile(
    r"(?:[- ]sided)?\s+(?:greater|more|larger|worse)\s+than\s+(?:the\s+)?(?:left|right)\b", re.IGNORECASE
)
# "left greater than right basilar atelectasis": the side word matched is the second of the two
_GREATER_BEFORE = re.compile(
    r"(?:left|right)(?:[- ]sided)?\s+(?:greater|more|larger|worse)\s+than\s+(?:the\s+)?$", re.IGNORECASE
)
# "both atelectasis and pneumonia": "both" right before the finding and "and"/"or" after it is the
# conjunction, not a side
_CONJUNCTION = re.compile(r"\s*,?\s*(?:and|or)\b", re.IGNORECASE)
_STOP = re.compile(r"[.;,:\n]|\b(?:and|or|with|in|of|at|to|from)\b", re.IGNORECASE)
_LEFT_NAMES = {"lingula"}


def finding_side(text: str, start: int, end: int) -> str | None:
    """The side the report gives a finding at characters ``[start, end)``: ``left``, ``right``,
    ``bilateral`` or ``None``. The side word must be in the finding's own phrase (no punctuation,
    "and", "in" ... between).

    >>> t = "Opacity in the right lower lobe and a left pleural effusion."
    >>> finding_side(t, t.index("pleural"), t.index("pleural") + 16), finding_side(t, 0, 7)
    ('left', 'right')
    >>> finding_side("Effusion on the left.", 0, 8), finding_side("Effusions in both lungs.", 0, 9)
    ('left', 'bilateral')
    >>> t = "Could represent both atelectasis and pneumonia."
    >>> finding_side(t, t.index("atelectasis"), t.index("atelectasis") + 11) is None
    True
    """
    before = text[max(0, start - _BEFORE_CHARS) : start]
    m = _BEFORE.search(before)
    if m is not None:
        side = _side_before(m, before, text, end)
        if side is not None:
            return side
    return _side_after(text, end)


def _side_before(m: re.Match[str], before: str, text: str, end: int) -> str | None:
    """The side a :data:`_BEFORE` match gives the finding ending at ``end``, or ``None`` when the match
    is not the finding's side (a stop word between, or the conjunction "both ... and")."""
    between = before[m.end(1) :]
    if _STOP.search(between):
        return None
    side = m.group(1).lower()
    if side == "both" and not between.strip() and _CONJUNCTION.match(text, end):
        return None
    if side in _BOTH or _GREATER.match(between) or _GREATER_BEFORE.search(before, 0, m.start(1)):
        return "bilateral"
    return side


def _side_after(text: str, end: int) -> str | None:
    """The side the phrase right after a finding ending at ``end`` gives it (:data:`_AFTER`)."""
    after = _AFTER.match(text[end : end + _AFTER_CHARS])
    if after is None:
        return None
    side = after.group(1)
    if side is None or side.lower() in _BOTH:
        return "bilateral"
    return side.lower()


def side_word_starts(text: str) -> list[int]:
    """Sorted char offsets where a side word may start in ``text`` (every start of ``left``, ``right``,
    ``bilat``, ``both``, ``bibas``, ``biapical``, ``bihilar``, any case, inside words too): a superset of
    where :func:`finding_side`'s side words start.

    >>> side_word_starts("Left base, cleft; BOTH.")
    [0, 12, 18]
    """
    if not text.isascii():  # lower() may change the length of other text
        return [m.start() for m in _SIDE_WORD.finditer(text)]
    low = text.lower()
    out: list[int] = []
    for word in _SIDE_PREFIXES:
        i = low.find(word)
        while i >= 0:
            out.append(i)
            i = low.find(word, i + 1)
    out.sort()
    return out


def side_at(text: str, start: int, end: int, at: list[int]) -> str | None:
    """:func:`finding_side` of ``[start, end)`` given ``at = side_word_starts(text)``: the side-word
    pattern is tried only where a side word starts (leftmost first, as ``search`` would), and the
    phrase after the finding only when a side word follows within reach.

    >>> t = "Opacity in the right lower lobe and a left pleural effusion."
    >>> side_at(t, 43, 59, side_word_starts(t)), side_at(t, 0, 7, side_word_starts(t))
    ('left', 'right')
    """
    w0 = max(0, start - _BEFORE_CHARS)
    i = bisect_left(at, w0)
    n = len(at)
    if i < n and at[i] < start:
        before = text[w0:start]
        while i < n and at[i] < start:
            m = _BEFORE.match(before, at[i] - w0)
            if m is not None:
                side = _side_before(m, before, text, end)
                if side is None:
                    break  # as finding_side: the leftmost match decides, then the phrase after
                return side
            i += 1
    i = bisect_left(at, end, i)
    if i < n and at[i] < end + _AFTER_CHARS:
        return _side_after(text, end)
    return None


def sides_of(text: str, spans: list[tuple[int, int]]) -> list[str | None]:
    """:func:`finding_side` of each char span of ``text``, with one scan of the text for side words
    (:func:`side_at`).

    >>> t = "Bibasilar atelectasis. Cardiomegaly. Effusion on the right."
    >>> sides_of(t, [(10, 21), (23, 35), (37, 45)])
    ['bilateral', None, 'right']
    """
    at = side_word_starts(text)
    if not at:
        return [None] * len(spans)
    return [side_at(text, a, b, at) for a, b in spans]


def batch_sides(texts: list[str], rep: np.ndarray, start: np.ndarray, end: np.ndarray) -> dict[int, str]:
    """:func:`finding_side` of many entities of a batch: ``{entity index: side}`` for those with a side.

    Entity ``i`` is at chars ``[start[i], end[i])`` of ``texts[rep[i]]``. The side words of all texts are
    found at once and the entities with none within reach (most) are dropped with numpy; the rest go
    through :func:`side_at`.

    >>> texts = ["Left effusion. Cardiomegaly.", "Edema."]
    >>> batch_sides(texts, np.array([0, 0, 1]), np.array([5, 15, 0]), np.array([13, 27, 5]))
    {0: 'left'}
    """
    base = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) + 1 for t in texts], out=base[1:])
    found: list[np.ndarray] = []
    if all(t.isascii() for t in texts):
        found.append(np.array(side_word_starts("\x00".join(texts)), dtype=np.int64))
    else:
        for k, t in enumerate(texts):
            found.append(np.array(side_word_starts(t), dtype=np.int64) + base[k])
    at = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    if not len(at) or not len(rep):
        return {}
    at.sort()
    a_glob = base[rep] + start
    b_glob = base[rep] + end
    i = np.searchsorted(at, np.maximum(a_glob - _BEFORE_CHARS, base[rep]))
    near = np.flatnonzero(at[np.minimum(i, len(at) - 1)] < b_glob + _AFTER_CHARS)
    near = near[i[near] < len(at)]
    out: dict[int, str] = {}
    local: dict[int, list[int]] = {}
    rep_l, start_l, end_l = rep[near].tolist(), start[near].tolist(), end[near].tolist()
    for j, e in enumerate(near.tolist()):
        k = rep_l[j]
        at_k = local.get(k)
        if at_k is None:
            lo, hi = np.searchsorted(at, [base[k], base[k + 1]])
            at_k = local[k] = (at[lo:hi] - base[k]).tolist()
        side = side_at(texts[k], start_l[j], end_l[j], at_k)
        if side is not None:
            out[e] = side
    return out


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
        Entity rows (``report_id``, ``start``, ``end``, ``label``, ``location`` and, as the parse
        stage makes them, ``laterality``) of reports ``ids``.
    ids, texts
        The reports' ids and the texts the offsets point into (read only for a table without a
        ``laterality`` column).

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
    locs = loc.to_pylist()
    if "laterality" in entities.column_names:
        sides = entities["laterality"].to_pylist()
    else:
        text_of = dict(zip(ids, texts, strict=True))
        rep, starts, ends = (entities[c].to_pylist() for c in ("report_id", "start", "end"))
        sides = [None] * len(locs)
        for i in candidates.tolist():
            sides[i] = finding_side(text_of[rep[i]], starts[i], ends[i])
    cleared = []
    for i in candidates.tolist():
        where = location_side(locs[i])
        if where is not None and sides[i] is not None and sides[i] != where:
            cleared.append(i)
    if not cleared:
        return entities
    for i in cleared:
        locs[i] = None
    col = entities.schema.get_field_index("location")
    return entities.set_column(
        col, entities.schema.field(col), pa.array(locs, entities.schema.field(col).type)
    )
