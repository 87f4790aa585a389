"""Read BIO-tagged CoNLL/TSV NER corpora (BC5CDR, NCBI-disease) into plain :class:`NerDoc` records.

The format is one ``token<TAB>tag`` line per token, a blank line between sentences, tags in BIO
(``O``, ``B-Label``, ``I-Label``). ``-DOCSTART-`` lines (CoNLL-2003 style) end the current sentence and
are otherwise skipped; extra tab-separated columns between token and tag (POS, chunk) are ignored, the
tag is always the last column. Nothing here needs spaCy: the records are pure data, the spaCy adapters
live in :mod:`medmm.reports.ner.docs`.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "train.tsv"
>>> _ = p.write_text("Aspirin\\tB-Chemical\\ncauses\\tO\\nacute\\tB-Disease\\nasthma\\tI-Disease\\n\\n")
>>> doc = read_conll(p)[0]
>>> doc.words
('Aspirin', 'causes', 'acute', 'asthma')
>>> doc.spans
((0, 1, 'Chemical'), (2, 4, 'Disease'))
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from medmm.errors import InputError

__all__ = [
    "CorpusFormatError",
    "NerDoc",
    "bio_to_spans",
    "corpus_stats",
    "read_conll",
    "read_corpus_dir",
]

#: File suffixes :func:`read_corpus_dir` treats as corpus splits.
CORPUS_SUFFIXES = (".tsv", ".conll", ".iob", ".bio")


class CorpusFormatError(InputError):
    """A NER corpus file is not ``token<TAB>tag`` BIO; the message names ``file:line`` and the fix."""


@dataclass(frozen=True)
class NerDoc:
    """One pre-tokenized sentence (or document) with its BIO tags.

    Attributes
    ----------
    words : tuple of str
        The corpus tokens, in order.
    tags : tuple of str
        One BIO tag per token (``O``, ``B-X``, ``I-X``).
    source : str
        ``file:line`` of the first token, for error messages.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    source: str = ""

    @property
    def spans(self) -> tuple[tuple[int, int, str], ...]:
        """Entity spans as ``(start, end, label)`` token offsets (end exclusive)."""
        return tuple(bio_to_spans(self.tags))

    @property
    def text(self) -> str:
        """The tokens joined by single spaces (the corpora do not keep the original whitespace)."""
        return " ".join(self.words)


def bio_to_spans(tags: tuple[str, ...] | list[str]) -> list[tuple[int, int, str]]:
    """Turn BIO tags into ``(start, end, label)`` spans, end exclusive.

    An ``I-X`` that does not continue an ``X`` entity starts a new one (the conlleval convention), so
    malformed tagging never drops a gold entity silently.

    >>> bio_to_spans(["B-Chemical", "I-Chemical", "O", "I-Disease", "B-Disease"])
    [(0, 2, 'Chemical'), (3, 4, 'Disease'), (4, 5, 'Disease')]
    """
    spans: list[tuple[int, int, str]] = []
    start, label = -1, ""
    for i, tag in enumerate(tags):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and start >= 0 and name == label
        if continues:
            continue
        if start >= 0:
            spans.append((start, i, label))
            start, label = -1, ""
        if prefix in ("B", "I"):
            start, label = i, name
    if start >= 0:
        spans.append((start, len(tags), label))
    return spans


def _check_tag(tag: str, path: Path, lineno: int) -> None:
    if tag == "O":
        return
    prefix, dash, name = tag.partition("-")
    if prefix not in ("B", "I") or not dash or not name:
        raise CorpusFormatError(
            f"{path}:{lineno}",
            f"tag {tag!r} is not BIO (expected 'O', 'B-<label>' or 'I-<label>')",
            "convert the file to BIO tags (IOBES/IOB1 corpora: map S-/E- to B-/I-)",
        )


def read_conll(path: Path) -> list[NerDoc]:
    """Read one BIO CoNLL/TSV file into a list of :class:`NerDoc` (one per blank-line separated block).

    Parameters
    ----------
    path : Path
        A file with ``token<TAB>tag`` lines (extra middle columns allowed, the tag is the last one).

    Returns
    -------
    list of NerDoc
        Sentences in file order; empty blocks are skipped.

    Raises
    ------
    CorpusFormatError
        For a missing file, a line without a tab-separated tag, or a tag that is not BIO; the message
        names ``file:line`` and how to fix it.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "bad.tsv"
    >>> _ = p.write_text("Aspirin B-Chemical\\n")
    >>> read_conll(p)  # doctest: +ELLIPSIS, +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    CorpusFormatError: ...bad.tsv:1: line has no TAB-separated tag ...
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusFormatError(str(path), "corpus file not found", "pass an existing BIO/CoNLL .tsv file")
    docs: list[NerDoc] = []
    words: list[str] = []
    tags: list[str] = []
    first = 0

    def flush() -> None:
        if words:
            docs.append(NerDoc(tuple(words), tuple(tags), f"{path}:{first}"))
            words.clear()
            tags.clear()

    with path.open(encoding="utf-8", errors="strict") as fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    flush()
                    continue
                if line.startswith("-DOCSTART-"):
                    flush()
                    continue
                cols = line.split("\t")
                if len(cols) < 2 or not cols[0] or not cols[-1]:
                    raise CorpusFormatError(
                        f"{path}:{lineno}",
                        f"line has no TAB-separated tag: {line[:60]!r}",
                        "write one 'token<TAB>tag' pair per line and a blank line between sentences",
                    )
                tag = cols[-1].strip()
                _check_tag(tag, path, lineno)
                if not words:
                    first = lineno
                words.append(cols[0])
                tags.append(tag)
        except UnicodeDecodeError as exc:
            raise CorpusFormatError(
                str(path), f"not UTF-8 text ({exc.reason})", "re-encode the corpus file as UTF-8"
            ) from exc
    flush()
    return docs


def read_corpus_dir(directory: Path) -> dict[str, list[NerDoc]]:
    """Read every split file (``train.tsv``, ``devel.tsv``, ``test.tsv`` ...) of a corpus folder.

    Parameters
    ----------
    directory : Path
        A folder holding ``<split>.tsv`` (or ``.conll``/``.iob``/``.bio``) files.

    Returns
    -------
    dict
        ``{split name (file stem): docs}``, sorted by split name.

    >>> from medmm.datasets import shared_data_dir
    >>> root = shared_data_dir()
    >>> root is None or sorted(read_corpus_dir(root / "text" / "ncbi_disease")) == ["devel", "train"]
    True
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CorpusFormatError(
            str(directory), "corpus folder not found", "pass a folder with train.tsv / devel.tsv BIO files"
        )
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in CORPUS_SUFFIXES)
    if not files:
        raise CorpusFormatError(
            str(directory),
            f"no corpus files ({', '.join(CORPUS_SUFFIXES)}) in the folder",
            "put the splits there as train.tsv, devel.tsv (token<TAB>BIO tag per line)",
        )
    return {p.stem: read_conll(p) for p in files}


def corpus_stats(docs: list[NerDoc]) -> dict[str, object]:
    """Counts of documents, tokens and entities per label (JSON-serializable).

    >>> corpus_stats([NerDoc(("a", "b"), ("B-X", "O"))])
    {'docs': 1, 'tokens': 2, 'entities': {'X': 1}}
    """
    labels: Counter[str] = Counter(label for d in docs for _, _, label in d.spans)
    return {
        "docs": len(docs),
        "tokens": sum(len(d.words) for d in docs),
        "entities": dict(sorted(labels.items())),
    }
