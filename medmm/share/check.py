"""The share's self-check: no name of the source archive in any shared file.

After a share is written, every file in it is read back: table cells (every string cell, list cells
item by item; columns of medmm's own vocabulary excepted), JSON values, NIfTI text fields and
extensions, ``.npy`` headers, other files' bytes, and each file's own path. A source name (path, folder,
file name, stem, record name: :class:`~medmm.share.names.SourceNames`) found there is a finding; findings
name the file and column or key, never the name itself. Names too short to be told from ordinary text
(:func:`~medmm.share.names.is_weak`, like MIT-BIH's ``100``) are looked for only as whole values.

>>> import tempfile, pathlib, json
>>> from medmm.pseudonym import Pseudonymizer
>>> from medmm.share.names import SourceNames
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.json").write_text(json.dumps({"x": "from DOE_JOHN_19700101.dcm"}))
>>> names = SourceNames.build(["DOE_JOHN_19700101.dcm"], [], Pseudonymizer(b"k" * 32))
>>> find_source_names(d, names.sensitive)
['a.json: x']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from medmm.share.names import NameIndex, is_plain_word, is_weak
from medmm.share.words import medmm_words

__all__ = ["NameMatcher", "find_source_names"]


class NameMatcher:
    """Whether a text holds a source name: a weak name (:func:`is_weak`) only as the whole text, any
    other name anywhere at word boundaries. A name that is a bare word of medmm's own messages
    (:func:`~medmm.share.names.is_plain_word`: a file ``empty.dcm``'s stem, a folder ``dicom``) is not
    looked for: it names nobody, and medmm's text and vocabulary columns hold it.

    >>> m = NameMatcher(["100", "DOE_JOHN"])
    >>> m.hit("100"), m.hit("x 100 y"), m.hit("see DOE_JOHN."), m.hit_path("a/100.hea")
    (True, False, True, True)
    """

    def __init__(self, names: Iterable[str]) -> None:
        words = medmm_words()  # a file stem that is a word of medmm's messages ("empty", "dicom")
        self.whole = {n for n in names if not is_plain_word(n, words)}
        self.inside = NameIndex(n for n in self.whole if not is_weak(n))

    def hit(self, text: str) -> bool:
        """``text`` is a name or holds a non-weak one."""
        return text in self.whole or bool(self.inside.find(text))

    def hit_path(self, rel: str) -> bool:
        """A path one of whose parts (or part stems) is a name, or which holds a non-weak one."""
        parts = [p for part in rel.split("/") for p in (part, part.split(".", 1)[0])]
        return any(p in self.whole for p in parts) or bool(self.inside.find(rel))


def _strings(obj: Any) -> Iterator[tuple[str, str]]:
    """``(where, string)`` of every string value (not key) in parsed JSON, ``where`` a key path."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            yield where, value
        elif isinstance(value, dict):
            stack += [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            stack += [(f"{where}[]", v) for v in value]


def _cells(values: Iterable[Any]) -> Iterator[str]:
    for v in values:
        if isinstance(v, str):
            yield v
        elif isinstance(v, (bytes, bytearray)):
            yield bytes(v).decode("utf-8", "replace")
        elif hasattr(v, "__iter__") and not isinstance(v, dict):
            yield from _cells(v)
        elif isinstance(v, dict):
            yield from (s for _, s in _strings(v))


def _table_findings(path: Path, rel: str, matcher: NameMatcher, vocab: set[str]) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    out = []
    for name in table.column_names:
        if name in vocab or not _may_hold_text(table.column(name).type):
            continue
        column = table.column(name).unique() if _hashable(table.column(name).type) else table.column(name)
        if any(matcher.hit(s) for s in _cells(column.to_pylist())):
            out.append(f"{rel}: column {name}")
    meta = table.schema.metadata or {}
    for key, value in meta.items():
        if key != b"pandas" and matcher.hit(value.decode("utf-8", "replace")):
            out.append(f"{rel}: metadata {key.decode('utf-8', 'replace')}")
    return out


def _csv_findings(path: Path, rel: str, matcher: NameMatcher, vocab: set[str]) -> list[str]:
    """Every cell of a CSV table as a whole value (a weak name such as ``100`` is a cell there), and
    its bytes (a name inside a cell, or in a header)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = [
        f"{rel}: column {c}"
        for c in frame.columns
        if c not in vocab and any(map(matcher.hit, frame[c].unique()))
    ]
    if any(matcher.hit(str(c)) for c in frame.columns):
        out.append(f"{rel}: header")
    return out


def _may_hold_text(arrow_type: Any) -> bool:
    """Numbers, flags and times hold no name; strings, binaries, lists, structs, maps may."""
    import pyarrow as pa

    t = pa.types
    return not (
        t.is_integer(arrow_type)
        or t.is_floating(arrow_type)
        or t.is_boolean(arrow_type)
        or t.is_temporal(arrow_type)
        or t.is_decimal(arrow_type)
        or t.is_null(arrow_type)
    )


def _hashable(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _file_findings(path: Path, rel: str, matcher: NameMatcher, vocab: set[str]) -> list[str]:
    from medmm.share.nifti import nifti_text_fields

    if path.suffix == ".parquet":
        return _table_findings(path, rel, matcher, vocab)
    if path.suffix == ".csv":
        return _csv_findings(path, rel, matcher, vocab)
    if path.suffix == ".json":  # vocab: top-level keys of medmm's own vocabulary (sidecar modality ...)
        data = json.loads(path.read_text(encoding="utf-8"))
        hits = {where for where, s in _strings(data) if where not in vocab and matcher.hit(s)}
        return sorted(f"{rel}: {where or '<value>'}" for where in hits)
    if path.name.endswith((".nii", ".nii.gz")):
        fields = nifti_text_fields(path)
        return [
            f"{rel}: header {k}" for k, v in fields.items() if v.strip(b"\x00") and _bytes_hit(v, matcher)
        ]
    if path.suffix == ".npy":
        with path.open("rb") as fh:
            head = fh.read(256)
        return [f"{rel}: header"] if _bytes_hit(head, matcher) else []
    return [f"{rel}: bytes"] if _bytes_hit(path.read_bytes(), matcher) else []


def _bytes_hit(data: bytes, matcher: NameMatcher) -> bool:
    text = data.decode("utf-8", "replace")
    return bool(matcher.inside.find(text)) or any(tok in matcher.whole for tok in text.split("\x00") if tok)


def _fixed_parts() -> set[str]:
    """Path parts that are medmm's own artifact names (``manifest_reports.parquet``, ``models`` ...)."""
    from medmm.share.policy import JSON_FILES, TABLES

    patterns = [*TABLES, *JSON_FILES, "share_report.json", "volumes/", "windows/"]
    return {part for pattern in patterns for part in pattern.split("/") if part and "*" not in part}


def find_source_names(share_dir: Path, names: Iterable[str], vocab_columns: Iterable[str] = ()) -> list[str]:
    """Where (``file: column``/``file: key``) any of ``names`` occurs in the files under ``share_dir``.

    Parameters
    ----------
    share_dir
        The written share.
    names
        The source names that must not occur (:attr:`SourceNames.sensitive`).
    vocab_columns
        ``file:column`` of the columns holding only medmm's own vocabulary (``Policy.vocab``), and
        ``file:key`` of such JSON keys (volume sidecars' ``modality`` ...), not read.

    Returns
    -------
    list of str
        One entry per file and column (or key, or ``bytes``) holding a name; empty when the share is clean.
        The names found are never part of the entries.
    """
    matcher = NameMatcher(names)
    vocab = set(vocab_columns)
    fixed = _fixed_parts()
    findings = []
    for path in sorted(p for p in Path(share_dir).rglob("*") if p.is_file()):
        rel = path.relative_to(share_dir).as_posix()
        if matcher.hit_path("/".join(p for p in rel.split("/") if p not in fixed)):
            findings.append(f"{rel}: file name")
        col_vocab = {c.split(":", 1)[1] for c in vocab if c.split(":", 1)[0] == rel}
        findings += _file_findings(path, rel, matcher, col_vocab)
    return findings
