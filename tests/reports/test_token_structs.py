"""Token fields copied from spaCy's TokenC arrays equal ``Doc.to_array``'s, and ``batch_tables`` gives the
same tables with them as with ``to_array``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from spacy.attrs import ENT_ID, ENT_IOB, ENT_TYPE, IDX, LENGTH, SENT_START

from medmm.reports import batch_extract, token_structs
from medmm.reports.batch_extract import batch_tables
from medmm.reports.nlp import PipelineSpec, get_pipeline
from medmm.reports.token_structs import ArrayTokens, TokenBuffer, struct_reader_ok

TEXTS = [
    "FINDINGS: A 1.2 x 0.8 cm nodule in the right upper lobe. No effusion.\nIMPRESSION: Nodule.",
    "",
    "   ",
    "Mild cardiomegaly",  # entity at the very end, no trailing space
    "Caf\u00e9 \u2014 mild cardiomegaly.  No effusion \u00e0 droite.\n\n",  # non-ASCII, double spaces
    "Heart size XXXX enlarged. Right lower lobe opacity cannot be excluded. 2 to 3 cm effusion.",
    "\n",
    "Congestive heart failure (CHF). CHF has resolved.",
]


def _docs(texts: list[str]) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(get_pipeline(PipelineSpec()).pipe(texts))


def test_fields_equal_to_array_across_docs() -> None:
    docs = _docs(TEXTS * 3)
    assert struct_reader_ok(docs[0].vocab)
    buf = TokenBuffer()
    buf._buf = np.empty(64, dtype=np.uint8)  # forces the buffer to grow while docs are added
    buf._dst, buf._size = buf._buf.data, len(buf._buf)
    for doc in docs:
        buf.add(doc)
    got = buf.read([len(d.text) for d in docs])
    ref = np.concatenate([d.to_array([ENT_IOB, ENT_TYPE, ENT_ID, IDX, LENGTH, SENT_START]) for d in docs])
    ref = ref.view(np.int64)
    assert buf.doc_tokens == [len(d) for d in docs] and buf.n_tokens == len(ref)
    assert got.counts.tolist() == [len(d) for d in docs]
    assert got.iob.tolist() == ref[:, 0].tolist()
    assert got.sent_start.tolist() == ref[:, 5].tolist()
    every = np.arange(len(ref))
    assert got.ent_type(every).tolist() == ref[:, 1].tolist()
    assert got.ent_id(every).tolist() == ref[:, 2].tolist()
    assert got.idx(every).tolist() == ref[:, 3].tolist()
    assert got.end(every).tolist() == (ref[:, 3] + ref[:, 4]).tolist()
    some = np.array([len(ref) - 1, 0, 5, 5, len(docs[0]) - 1])  # any order, repeats, docs' last tokens
    assert got.end(some).tolist() == (ref[some, 3] + ref[some, 4]).tolist()
    assert got.idx(some).tolist() == ref[some, 3].tolist() and got.end(some[:0]).tolist() == []
    assert (ref[:, 1] != 0).any() and (ref[:, 2] != 0).any()  # entities and pattern ids were read
    plain = ArrayTokens([d.to_array(ArrayTokens.ATTRS) for d in docs])
    assert plain.counts.tolist() == got.counts.tolist()
    assert plain.end(every).tolist() == got.end(every).tolist()
    buf.clear()
    assert buf.n_tokens == 0 and buf.read([]).iob.tolist() == []


def test_layout_check_rejects_another_doc_struct(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Doc type of another size (another spaCy build) or wrong offsets: not read as TokenC structs."""
    from spacy.tokens import Doc

    vocab = _docs(["No effusion."])[0].vocab

    class Other:  # another object layout
        pass

    assert token_structs._check(Doc, vocab) and not token_structs._check(Other, vocab)
    monkeypatch.setattr(token_structs, "_checked", {})
    wrong = np.dtype(  # idx at another offset: caught by the comparison with Doc.to_array
        {
            "names": ["spacy", "idx", "sent_start", "ent_iob", "ent_type", "ent_id"],
            "formats": ["<i4", "<i4", "<i4", "<i4", "<u8", "<u8"],
            "offsets": [20, 36, 88, 92, 96, 112],
            "itemsize": 120,
        }
    )
    monkeypatch.setattr(token_structs, "TOKEN_DTYPE", wrong)
    assert not token_structs.struct_reader_ok(vocab)


@pytest.mark.parametrize("chunk", [3, 128])
def test_batch_tables_same_with_struct_reader_as_with_to_array(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(batch_extract, "CHUNK", chunk)
    spec = PipelineSpec()
    texts = TEXTS * 4
    ids = [f"r{i}" for i in range(len(texts))]
    docs = _docs(texts)
    fast = batch_tables(docs, ids, texts, [None] * len(texts), spec)
    monkeypatch.setattr(batch_extract, "struct_reader_ok", lambda vocab: False)
    plain = batch_tables(docs, ids, texts, [None] * len(texts), spec)
    assert fast[0].num_rows > 30 and fast[0].equals(plain[0])
    assert fast[1].equals(plain[1]) and fast[2] == plain[2]
