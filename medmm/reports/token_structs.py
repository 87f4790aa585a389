"""The token fields ``parse`` needs, copied in bulk from spaCy's ``TokenC`` arrays (``ctypes``, no build).

``Doc.to_array`` of the six token attributes the fast path reads (entity IOB, type and pattern id,
char offset, length, sentence start) calls a getter per token and attribute, each taking the GIL
state: ~4.3 µs per IU report, 2% of ``nlp.pipe``. A ``Doc`` keeps its tokens as one C array of
``TokenC`` structs; :class:`TokenBuffer` copies each doc's array with one ``memmove`` into a buffer
reused between chunks of docs (~0.8 µs per report) and reads the fields with numpy. A token's length
is not in ``TokenC`` (it is in the lexeme it points to): it follows from the next token's offset, as
a doc's text is its tokens' texts, each followed by one space or none (``spacy``).

The layout is spaCy's (``spacy/tokens/doc.pxd``, ``spacy/structs.pxd``): it is checked once per
process (:func:`struct_reader_ok`) on the ``Doc`` object of a synthetic doc (the Python objects the
``Doc`` struct holds at their offsets, its length) and by comparing every field read with
``Doc.to_array`` on a doc with sentences, entities, pattern ids, spaces and no spaces; if anything
differs (another spaCy build), callers use ``Doc.to_array`` instead.

>>> import spacy
>>> nlp = spacy.blank("en")
>>> doc = nlp("No effusion.")
>>> struct_reader_ok(doc.vocab)
True
>>> buf = TokenBuffer()
>>> buf.add(doc)
>>> buf.fields([len(doc.text)])["end"].tolist()
[2, 11, 12]
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

__all__ = ["TOKEN_DTYPE", "TokenBuffer", "struct_reader_ok"]

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
_memmove = ctypes.memmove


def struct_reader_ok(vocab: Any) -> bool:
    """Whether :class:`TokenBuffer` reads what ``Doc.to_array`` gives in this process (checked once, on
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
    from spacy.attrs import ENT_ID, ENT_IOB, ENT_TYPE, IDX, LENGTH, SENT_START
    from spacy.tokens import Span

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
    buf = TokenBuffer()
    buf.add(doc)
    got = buf.fields([len(doc.text)])
    ref = doc.to_array([ENT_IOB, ENT_TYPE, ENT_ID, IDX, LENGTH, SENT_START]).view(np.int64)
    expected = [ref[:, 0], ref[:, 1], ref[:, 2], ref[:, 3], ref[:, 3] + ref[:, 4], ref[:, 5]]
    names = ["ent_iob", "ent_type", "ent_id", "idx", "end", "sent_start"]
    return all(np.array_equal(got[n], e) for n, e in zip(names, expected, strict=True)) and bool(
        ref[:, 2].any() and (ref[:, 0] == 1).any() and (ref[:, 5] == 1).sum() == 3
    )


class TokenBuffer:
    """The ``TokenC`` arrays of a run of docs, copied one after another (:meth:`add`) into one buffer
    that is reused after :meth:`clear`; :meth:`fields` reads them as numpy arrays.

    Only for docs of the ``Doc`` type :func:`struct_reader_ok` accepted.
    """

    def __init__(self) -> None:
        self._buf = np.empty(1 << 16, dtype=np.uint8)
        self._base = self._buf.ctypes.data
        self.n_tokens = 0  # tokens in the buffer
        self.doc_tokens: list[int] = []  # tokens of each doc added

    def add(self, doc: Any) -> None:
        """Copy ``doc``'s tokens to the end of the buffer (the doc may be freed afterwards)."""
        n = len(doc)
        self.doc_tokens.append(n)
        if not n:
            return
        at = self.n_tokens * _TOKEN_SIZE
        end = at + n * _TOKEN_SIZE
        if end > len(self._buf):
            grown = np.empty(max(2 * len(self._buf), end), dtype=np.uint8)
            grown[:at] = self._buf[:at]
            self._buf, self._base = grown, grown.ctypes.data
        tokens = _address(id(doc) + _C_OFFSET).value  # never NULL: the doc has tokens
        _memmove(self._base + at, tokens, n * _TOKEN_SIZE)  # type: ignore[arg-type]
        self.n_tokens += n

    def clear(self) -> None:
        """Forget the docs added (the buffer's memory is kept for the next ones)."""
        self.n_tokens = 0
        self.doc_tokens.clear()

    def fields(self, text_lengths: list[int]) -> dict[str, np.ndarray]:
        """The tokens' ``ent_iob``, ``ent_type``, ``ent_id`` (as int64, like ``Doc.to_array``'s values
        viewed signed), ``idx``, ``end`` (char offset after the token) and ``sent_start``, given the
        length of each doc's text."""
        n = self.n_tokens
        t = self._buf[: n * _TOKEN_SIZE].view(TOKEN_DTYPE)
        idx = t["idx"].astype(np.int64)
        spacy = t["spacy"]
        end = np.empty(n, dtype=np.int64)
        if n:  # a token ends where the next one starts, less its trailing space; a doc's last one
            end[:-1] = idx[1:]  # at the end of its text
            counts = np.array(self.doc_tokens, dtype=np.int64)
            last = np.cumsum(counts) - 1
            has = counts > 0
            end[last[has]] = np.array(text_lengths, dtype=np.int64)[has]
            end -= spacy
        return {
            "ent_iob": t["ent_iob"].astype(np.int64),
            "ent_type": t["ent_type"].view(np.int64),
            "ent_id": t["ent_id"].view(np.int64),
            "idx": idx,
            "end": end,
            "sent_start": t["sent_start"].astype(np.int64),
        }
