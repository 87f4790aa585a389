"""The ``text`` column of a batch's entities: each entity's slice of its report's text.

For an ASCII batch (char offsets are byte offsets) the column is cut with numpy from one buffer of all
the texts, without a Python string per entity; the few entity texts needed in Python are sliced on
demand (:class:`Slices`). Other batches are sliced in Python.

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
    # byte j of entity i is joined[text_start[rep[i]] + char_a[i] + j]
    take = np.repeat(text_start[rep] + char_a - offsets[:-1], size) + np.arange(offsets[-1], dtype=np.int64)
    data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)[take]
    column = pa.StringArray.from_buffers(
        len(size), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data.tobytes())
    )
    return column, Slices(texts, rep, char_a, char_b)
