"""The token fields ``parse`` needs, copied in bulk from spaCy's ``TokenC`` arrays (no build step).

``Doc.to_array`` of the six token attributes the fast path reads (entity IOB, type and pattern id,
char offset, length, sentence start) calls a getter per token and attribute, each taking the GIL
state: ~4.3 µs per IU report, 2% of ``nlp.pipe``. A ``Doc`` keeps its tokens as one C array of
``TokenC`` structs. :class:`TokenBuffer` copies each doc's array, as the doc comes out of the
pipeline and its tokens are still in the CPU caches, into a buffer reused between chunks of docs
(one slice assignment between memoryviews, ~0.3 µs per IU report); :meth:`TokenBuffer.read` then
reads the fields with numpy where they are needed: the entity IOB and sentence start of every token
(strided views, no copy), the other fields only at given tokens (entity starts and ends). A token's
length is not in ``TokenC`` (it is in the lexeme it points to): its end follows from the next token's
offset, as a doc's text is its tokens' texts, each followed by one space or none (``spacy``).

The layout is spaCy's (``spacy/tokens/doc.pxd``, ``spacy/structs.pxd``): it is checked once per
process (:func:`struct_reader_ok`) on the ``Doc`` object of a synthetic doc (the Python objects the
``Doc`` struct holds at their offsets, its length) and by comparing every field read with
``Doc.to_array`` on docs with sentences, entities, pattern ids, spaces, no spaces and no tokens; if
anything differs (another spaCy build), callers use :class:`ArrayTokens` (``Doc.to_array``), which
gives the same fields.

>>> import spacy
>>> nlp = spacy.blank("en")
>>> doc = nlp("No effusion.")
>>> struct_reader_ok(doc.vocab)
True
>>> buf = TokenBuffer()
>>> buf.add(doc)
>>> tokens = buf.read([len(doc.text)])
>>> tokens.counts.tolist(), tokens.end(np.arange(3)).tolist()
([3], [2, 11, 12])
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["TOKEN_DTYPE", "ArrayTokens", "StructTokens", "struct_reader_ok"]

#: The fields of spaCy's ``TokenC`` (x86-64 / aarch64 layout of spaCy 3.x) that ``parse`` reads.
TOKEN_DTYPE = np.dtype(
    {
        "names": ["spacy", "idx", "sent_start", "ent_iob", "ent_type", "ent_id"],
        "formats": ["<i4", "<i4", "<i4", "<i4", "<u8", "<u8"],
        "offsets": [20, 32, 88, 92, 96, 112],
        "itemsize": 120,
    }
)
_TOKEN_SIZE = TOKEN_DTYPE.itemsize
_WORD = ctypes.sizeof(ctypes.c_void_p)
_DOC_SIZE = 168  # Doc.__basicsize__
_C_OFFSET = 88  # Doc.c: pointer to the first TokenC
_LENGTH_OFFSET = 144  # Doc.length (C int)
#: ``Doc`` attributes held as Python object pointers, by their offset in the ``Doc`` struct.
_OBJECT_OFFSETS = {
    24: "mem",
    32: "vocab",
    72: "user_data",
    80: "spans",
    104: "user_hooks",
    112: "user_token_hooks",
    120: "user_span_hooks",
}
_checked: dict[int, bool] = {}  # id(Doc type) -> the layout check's answer
_address = ctypes.c_void_p.from_address
_LOW = 1 << 12  # no object lives in the first page
_C_WORD = _C_OFFSET - _LOW  # Doc.c's offset from the object's address in _memory
_TOP = 1 << 62  # above any user-space address (x86-64: 47 or 57 bits, aarch64: 48 or 52)


class _Memory:
    """``__array_interface__`` of the process memory ``[lo, hi)``, read-only: an array over it is only
    ever indexed where live objects are."""

    def __init__(self, lo: int, hi: int) -> None:
        self.__array_interface__ = {"data": (lo, True), "shape": (hi - lo,), "typestr": "|u1", "version": 3}


_memory: memoryview | None = None  # bytes from _LOW to _TOP, made by the layout check
_pointers: memoryview | None = None  # the same as 8-byte words


def struct_reader_ok(vocab: Any) -> bool:
    """Whether :class:`StructTokens` reads what ``Doc.to_array`` gives in this process (checked once, on
    a synthetic doc of ``vocab``; see the module docstring)."""
    from spacy.tokens import Doc

    key = id(Doc)
    if key not in _checked:
        try:
            _checked[key] = _check(Doc, vocab)
        except Exception:  # any surprise: not this layout
            _checked[key] = False
    return _checked[key]


def _check(doc_type: type, vocab: Any) -> bool:
    from spacy.tokens import Span

    global _memory, _pointers
    if _WORD != 8 or doc_type.__basicsize__ != _DOC_SIZE or np.little_endian is False:
        return False
    words = ["No", "pleural", "effusion", ".", "\n", "Mild", "cardiomegaly", "in", "the", "left", "lung", "."]
    spaces = [True, True, False, False, False, True, True, True, True, True, False, False]
    doc = doc_type(vocab, words=words, spaces=spaces, sent_starts=[i in (0, 5, 7) for i in range(len(words))])
    doc.ents = [
        Span(doc, 1, 3, label="FINDING", span_id="pleural effusion"),
        Span(doc, 6, 7, label="FINDING"),
        Span(doc, 9, 11, label="ANATOMY", span_id="left lung"),
    ]
    for offset, name in _OBJECT_OFFSETS.items():
        if _address(id(doc) + offset).value != id(getattr(doc, name)):
            return False
    if ctypes.c_int.from_address(id(doc) + _LENGTH_OFFSET).value != len(doc):
        return False
    if not _LOW <= id(doc) < _TOP - _DOC_SIZE:
        return False
    _memory = np.asarray(_Memory(_LOW, _TOP)).data
    _pointers = _memory.cast("Q")
    empty = doc_type(vocab, words=[])
    docs, lengths = [doc, empty, doc], [len(doc.text), 0, len(doc.text)]
    buf = TokenBuffer()
    buf._buf = np.empty(_TOKEN_SIZE, dtype=np.uint8)  # grows while the docs are added
    buf._dst, buf._size = buf._buf.data, len(buf._buf)
    for d in docs:
        buf.add(d)
    got = buf.read(lengths)
    ref = ArrayTokens([d.to_array(ArrayTokens.ATTRS) for d in docs])
    every = np.arange(int(ref.counts.sum()))
    ok = got.counts.tolist() == ref.counts.tolist() == [len(doc), 0, len(doc)]
    ok = ok and got.iob.tolist() == ref.iob.tolist() and got.sent_start.tolist() == ref.sent_start.tolist()
    for name in ("ent_type", "ent_id", "idx", "end"):
        ok = ok and getattr(got, name)(every).tolist() == getattr(ref, name)(every).tolist()
    return ok and bool(ref.ent_id(every).any() and (ref.iob == 1).any() and (ref.sent_start == 1).sum() == 6)


class ArrayTokens:
    """The token fields of a run of docs: ``counts`` tokens per doc, the entity IOB (``iob``) and
    ``sent_start`` of every token, the other fields at given token indices (counted across the docs).

    From the docs' ``Doc.to_array(ArrayTokens.ATTRS)`` arrays (the plain reader; :class:`StructTokens`
    gives the same from :class:`TokenBuffer`).
    """

    ATTRS = ("ENT_IOB", "ENT_TYPE", "ENT_ID", "IDX", "LENGTH", "SENT_START")

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self.counts = np.array([len(a) for a in arrays], dtype=np.int64)
        tok = np.concatenate(arrays).view(np.int64) if arrays else np.zeros((0, 6), dtype=np.int64)
        self.iob, self.sent_start = tok[:, 0], tok[:, 5]
        self._tok = tok

    def ent_type(self, at: np.ndarray) -> np.ndarray:
        """Entity label hash of tokens ``at`` (``int64`` view of the ``uint64`` hash)."""
        return self._tok[at, 1]

    def ent_id(self, at: np.ndarray) -> np.ndarray:
        """Entity pattern id hash of tokens ``at`` (``int64`` view)."""
        return self._tok[at, 2]

    def idx(self, at: np.ndarray) -> np.ndarray:
        """Char offset of tokens ``at`` in their doc's text."""
        return self._tok[at, 3]

    def end(self, at: np.ndarray) -> np.ndarray:
        """Char offset after tokens ``at`` (their trailing space not included)."""
        return self._tok[at, 3] + self._tok[at, 4]


class StructTokens(ArrayTokens):
    """:class:`ArrayTokens`' fields read from ``TokenC`` structs copied one after another into
    ``data`` (:meth:`TokenBuffer.read`): ``counts`` tokens per doc, ``text_lengths`` of their texts."""

    def __init__(self, data: np.ndarray, counts: Sequence[int], text_lengths: Sequence[int]) -> None:
        self.counts = np.array(counts, dtype=np.int64)
        self._first = np.zeros(len(self.counts) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=self._first[1:])
        self._lengths = np.array(text_lengths, dtype=np.int64)
        t = data[: int(self._first[-1]) * _TOKEN_SIZE].view(TOKEN_DTYPE)
        self._t = t
        self.iob, self.sent_start = t["ent_iob"], t["sent_start"]  # strided views of the buffer

    def ent_type(self, at: np.ndarray) -> np.ndarray:
        """Entity label hash of tokens ``at`` (``int64`` view of the ``uint64`` hash)."""
        return self._t["ent_type"][at].view(np.int64)

    def ent_id(self, at: np.ndarray) -> np.ndarray:
        """Entity pattern id hash of tokens ``at`` (``int64`` view)."""
        return self._t["ent_id"][at].view(np.int64)

    def idx(self, at: np.ndarray) -> np.ndarray:
        """Char offset of tokens ``at`` in their doc's text."""
        return self._t["idx"][at].astype(np.int64)

    def end(self, at: np.ndarray) -> np.ndarray:
        """Char offset after tokens ``at``: the next token's offset, or the text's end for a doc's
        last token, less the token's trailing space."""
        at = np.asarray(at, dtype=np.int64)
        if not len(at):
            return np.zeros(0, dtype=np.int64)
        doc = np.searchsorted(self._first, at, side="right") - 1
        last = at + 1 == self._first[doc + 1]
        after = np.where(last, self._lengths[doc], self.idx(np.minimum(at + 1, len(self._t) - 1)))
        return after - self._t["spacy"][at]


class TokenBuffer:
    """The ``TokenC`` arrays of a run of docs, copied one after another (:meth:`add`) into one buffer
    that is reused after :meth:`clear`; :meth:`read` gives their fields.

    Only for docs of the ``Doc`` type :func:`struct_reader_ok` accepted.
    """

    def __init__(self) -> None:
        self._buf = np.empty(1 << 16, dtype=np.uint8)
        self._dst = self._buf.data
        self._size = len(self._buf)
        self._used = 0  # bytes in the buffer
        self.doc_tokens: list[int] = []  # tokens of each doc added

    def add(self, doc: Any) -> None:
        """Copy ``doc``'s tokens to the end of the buffer (the doc may be freed afterwards)."""
        n = len(doc)
        self.doc_tokens.append(n)
        at = self._used
        end = at + n * _TOKEN_SIZE
        if end > self._size:
            self._grow(end)
        src = _pointers[(id(doc) + _C_WORD) >> 3] - _LOW  # type: ignore[index]  # (not read when n == 0)
        self._dst[at:end] = _memory[src : src + end - at]  # type: ignore[index]
        self._used = end

    def _grow(self, size: int) -> None:
        grown = np.empty(max(2 * self._size, size), dtype=np.uint8)
        grown[: self._used] = self._buf[: self._used]
        self._buf, self._dst, self._size = grown, grown.data, len(grown)

    @property
    def n_tokens(self) -> int:
        """Tokens in the buffer."""
        return self._used // _TOKEN_SIZE

    def clear(self) -> None:
        """Forget the docs added (the buffer's memory is kept for the next ones)."""
        self._used = 0
        self.doc_tokens.clear()

    def read(self, text_lengths: Sequence[int]) -> StructTokens:
        """The fields of the tokens added since the last :meth:`clear` (valid until the next
        :meth:`add`), given the length of each doc's text."""
        return StructTokens(self._buf, self.doc_tokens, text_lengths)
