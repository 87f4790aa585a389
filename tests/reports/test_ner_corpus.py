"""BIO/CoNLL corpus reader on the real BC5CDR / NCBI-disease files and on malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmm.errors import InputError
from medmm.reports.ner.corpus import (
    CorpusFormatError,
    NerDoc,
    bio_to_spans,
    corpus_stats,
    read_conll,
    read_corpus_dir,
)


def test_bc5cdr_train_counts(shared_data: Path) -> None:
    docs = read_conll(shared_data / "text" / "bc5cdr" / "train.tsv")
    stats = corpus_stats(docs)
    # 4,560 blank-line separated sentences; one entity per B- tag (5,203 Chemical, 4,182 Disease)
    assert stats["docs"] == 4560
    assert stats["entities"] == {"Chemical": 5203, "Disease": 4182}
    assert stats["tokens"] == 122730 - 4560
    first = docs[0]
    assert first.words[:3] == ("Selegiline", "-", "induced")
    assert first.spans[:2] == ((0, 1, "Chemical"), (3, 5, "Disease"))
    assert first.source.endswith("train.tsv:1")
    assert all(len(d.words) == len(d.tags) > 0 for d in docs)


def test_read_corpus_dir_ncbi(shared_data: Path) -> None:
    splits = read_corpus_dir(shared_data / "text" / "ncbi_disease")
    assert sorted(splits) == ["devel", "train"]
    assert corpus_stats(splits["devel"])["entities"] == {"Disease": 787}
    assert len(splits["train"]) == 5432


def test_docstart_and_extra_columns(tmp_path: Path) -> None:
    p = tmp_path / "c.conll"
    p.write_text("-DOCSTART-\tO\n\nEU\tNNP\tB-ORG\nrejects\tVBZ\tO\n-DOCSTART-\tO\nGerman\tJJ\tB-MISC\n")
    docs = read_conll(p)
    assert [d.words for d in docs] == [("EU", "rejects"), ("German",)]
    assert docs[1].spans == ((0, 1, "MISC"),)


def test_malformed_line_names_file_line_and_fix(tmp_path: Path) -> None:
    p = tmp_path / "bad.tsv"
    p.write_text("Aspirin\tB-Chemical\n\ncauses O\n")
    with pytest.raises(CorpusFormatError) as info:
        read_conll(p)
    msg = str(info.value)
    assert f"{p}:3" in msg and "TAB" in msg and "Fix:" in msg
    assert isinstance(info.value, InputError)


def test_non_bio_tag_rejected(tmp_path: Path) -> None:
    p = tmp_path / "iobes.tsv"
    p.write_text("Aspirin\tS-Chemical\n")
    with pytest.raises(CorpusFormatError, match=r"iobes.tsv:1: tag 'S-Chemical' is not BIO"):
        read_conll(p)


def test_missing_file_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(CorpusFormatError, match="not found"):
        read_conll(tmp_path / "nope.tsv")
    with pytest.raises(CorpusFormatError, match="no corpus files"):
        read_corpus_dir(tmp_path)


def test_bio_to_spans_edge_cases() -> None:
    assert bio_to_spans(["O", "O"]) == []
    assert bio_to_spans(["B-X", "B-X", "I-X"]) == [(0, 1, "X"), (1, 3, "X")]
    # an I- with another label starts a new entity rather than extending the previous one
    assert bio_to_spans(["B-X", "I-Y"]) == [(0, 1, "X"), (1, 2, "Y")]
    assert NerDoc(("a", "b"), ("O", "I-X")).spans == ((1, 2, "X"),)
