"""The ``text`` column of a batch's entities: each entity's slice of its report's text.

For an ASCII batch (char offsets are byte offsets) the column is cut from one buffer of all the texts,
without a Python string per entity: the buffer is read as a string array of its pieces (gap, entity,
gap, ...; no copy) and Arrow takes the entities (or, were entities out of text order, numpy gathers their
bytes); the few entity texts needed in Python are sliced on demand (:class:`Slices`). Other batches are
sliced in Python.

>>> import numpy as np
>>> column, texts = entity_texts(["No effusion.", "Mild edema."], np.array([0, 1]), np.array([3, 5]),
...                              np.array([11, 10]))
>>> column.to_pylist(), texts[1]
(['effusion', 'edema'], 'edema')
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["Slices", "entity_texts"]

_S = pa.string()


class Slices:
    """``texts[rep[i]][char_a[i]:char_b[i]]`` for the few entities whose text is needed in Python.

    >>> Slices(["No effusion."], np.array([0]), np.array([3]), np.array([11]))[0]
    'effusion'
    """

    def __init__(self, texts: list[str], rep: np.ndarray, char_a: np.ndarray, char_b: np.ndarray) -> None:
        self.texts, self.rep, self.char_a, self.char_b = texts, rep, char_a, char_b

    def __getitem__(self, i: int) -> str:
        return self.texts[int(self.rep[i])][int(self.char_a[i]) : int(self.char_b[i])]


def entity_texts(
    texts: list[str], rep: np.ndarray, char_a: np.ndarray, char_b: np.ndarray
) -> tuple[pa.Array, Slices | list[str]]:
    """The ``text`` column (entity ``i`` is ``texts[rep[i]][char_a[i]:char_b[i]]``) and a way to get one
    entity's text in Python (see the module docstring)."""
    joined = "".join(texts)
    size = char_b - char_a
    offsets = np.zeros(len(size) + 1, dtype=np.int64)
    np.cumsum(size, out=offsets[1:])
    if not joined.isascii() or offsets[-1] >= 1 << 31:  # (a string array has 32-bit offsets)
        spans = zip(rep.tolist(), char_a.tolist(), char_b.tolist(), strict=True)
        sliced = [texts[k][a:z] for k, a, z in spans]
        return pa.array(sliced, _S), sliced
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    text_start = np.zeros(len(texts), dtype=np.int64)
    np.cumsum(lengths[:-1], out=text_start[1:])
    src = text_start[rep] + char_a  # first byte of each entity in the joined text
    # entities in text order, none overlapping (as spaCy's): the joined text as a string array of
    # pieces (gap, entity, gap, entity, ..., gap) without copying it, and the entities taken from it
    bounds = np.empty(2 * len(src) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, len(joined)
    bounds[1:-1:2], bounds[2:-1:2] = src, src + size
    data = pa.py_buffer(joined.encode("ascii"))
    if len(joined) < 1 << 31 and bool(np.all(bounds[1:] >= bounds[:-1])):
        pieces = pa.StringArray.from_buffers(len(bounds) - 1, pa.py_buffer(bounds.astype(np.int32)), data)
        column = pieces.take(pa.array(np.arange(1, len(bounds) - 1, 2, dtype=np.int64)))
        return column, Slices(texts, rep, char_a, char_b)
    # byte j of entity i is joined[src[i] + j]
    take = np.repeat(src - offsets[:-1], size) + np.arange(offsets[-1], dtype=np.int64)
    gathered = np.frombuffer(data, dtype=np.uint8)[take]
    column = pa.StringArray.from_buffers(
        len(size), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(gathered.tobytes())
    )
    return column, Slices(texts, rep, char_a, char_b)
