"""The identifying names of a run (source paths, their parts, signal record names) and their pseudonyms.

A run's manifests hold the archive's own names: paths relative to the archive (``DOE^JOHN/2024-01-05/
img.dcm``), file names and stems, and signal record names (MIMIC's ``p000020-2183-04-28-17-47`` holds
the recording's real date). :class:`SourceNames` collects them once; :class:`NameIndex` finds them in
free text (a reason, a warning) at word boundaries, longest first, so they can be replaced by keyed
pseudonyms (:meth:`SourceNames.scrub`) and so that the share's self-check can look for them.

>>> from medmm.pseudonym import Pseudonymizer
>>> p = Pseudonymizer(b"k" * 32)
>>> names = SourceNames.build(["DOE^JOHN/2024-01-05/img.dcm"], ["p000020-2183-04-28-17-47"], p)
>>> text = names.scrub("MissingSliceError: DOE^JOHN/2024-01-05/img.dcm: gap. Fix: re-send")
>>> "DOE" in text or "2024-01-05" in text, text.startswith("MissingSliceError: fil-")
(False, True)
>>> names.record("p000020-2183-04-28-17-47").startswith("sig-")
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from medmm.pseudonym import Pseudonymizer
from medmm.share.words import medmm_words, name_tokens

__all__ = ["NameIndex", "SourceNames", "is_plain_word", "is_weak", "path_parts"]

#: Names shorter than this, and all-digit names shorter than :data:`_MIN_DIGITS`, are "weak": too short
#: to identify anyone alone or to be told from ordinary text and numbers ("CT", "a", MIT-BIH's "100").
#: They are pseudonymized where they are a whole value (a record column, a path) and checked as whole
#: values only, never searched inside free text.
_MIN_LEN = 4
_MIN_DIGITS = 6


def is_weak(name: str) -> bool:
    """Whether ``name`` is too short to be searched for inside text (checked only as a whole value).

    >>> is_weak("CT2"), is_weak("100"), is_weak("19700101"), is_weak("DOE^JOHN")
    (True, True, False, False)
    """
    return len(name) < _MIN_LEN or (name.isdigit() and len(name) < _MIN_DIGITS)


def is_plain_word(name: str, words: frozenset[str] | None = None) -> bool:
    """Whether ``name`` is a lowercase word of medmm's own messages (:func:`~medmm.share.words.medmm_words`):
    a file stem or folder named so (``empty.dcm``, ``dicom/``) names nobody and is not replaced in text.

    >>> is_plain_word("empty"), is_plain_word("DICOMDIR"), is_plain_word("smith")
    (True, False, False)
    """
    return name.isalpha() and name.islower() and name in (medmm_words() if words is None else words)


def path_parts(path: str) -> tuple[list[str], list[str], list[str]]:
    """``(folders, names, stems)`` of a manifest ``path`` (POSIX, relative; ``file.csv#3`` is row 3).

    ``folders`` are the folder names and the folder prefixes (``a``, ``a/b``); ``names`` the file name
    (and, for a ``#row`` path, the file name without the row); ``stems`` the name up to its first dot
    and up to its last dot.

    >>> path_parts("DOE^JOHN/2024-01-05/1.2.840.5.dcm")
    (['DOE^JOHN', '2024-01-05', 'DOE^JOHN/2024-01-05'], ['1.2.840.5.dcm'], ['1', '1.2.840.5'])
    >>> path_parts("reports.csv#2")
    ([], ['reports.csv#2', 'reports.csv'], ['reports'])
    """
    parts = [p for p in str(path).split("/") if p]
    if not parts:
        return [], [], []
    folders = parts[:-1] + ["/".join(parts[:i]) for i in range(2, len(parts))]
    name = parts[-1]
    names = [name]
    base = name.split("#", 1)[0] if "#" in name else name
    if base != name and base:
        names.append(base)
    stems = [s for s in dict.fromkeys([base.split(".", 1)[0], base.rsplit(".", 1)[0]]) if s and s != base]
    return folders, names, stems


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


class NameIndex:
    """Finds whole names in text: at word boundaries (no letter, digit or ``_`` just before or after),
    the longest name first at each position, without overlaps.

    A set lookup per candidate length at each boundary: no regular expression of thousands of
    alternatives, which Python's engine would try one by one.

    >>> idx = NameIndex(["DOE^JOHN", "DOE^JOHN/2024", "2024"])
    >>> idx.find("see DOE^JOHN/2024/x and 20245")
    [(4, 17, 'DOE^JOHN/2024')]
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._names = {n for n in names if n}
        lengths: dict[str, set[int]] = {}
        for n in self._names:
            lengths.setdefault(n[0], set()).add(len(n))
        #: candidate lengths per first character, longest first
        self._lengths = {c: sorted(ls, reverse=True) for c, ls in lengths.items()}

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping ``(start, end, name)`` of the names in ``text``, left to right."""
        out: list[tuple[int, int, str]] = []
        if not self._names or not text:
            return out
        i, n = 0, len(text)
        while i < n:
            if i == 0 or not _word(text[i - 1]):
                hit = self._longest_at(text, i)
                if hit:
                    out.append((i, i + hit, text[i : i + hit]))
                    i += hit
                    continue
            i += 1
        return out

    def _longest_at(self, text: str, i: int) -> int:
        n = len(text)
        for length in self._lengths.get(text[i], ()):
            end = i + length
            if end <= n and (end == n or not _word(text[end])) and text[i:end] in self._names:
                return length
        return 0


@dataclass
class SourceNames:
    """The identifying names of one run and their keyed pseudonyms (see the module docstring).

    ``sensitive`` holds every path part, file name, stem and record name: what must not reach a share.
    """

    pseudonymizer: Pseudonymizer
    paths: set[str] = field(default_factory=set)
    records: set[str] = field(default_factory=set)
    replacements: dict[str, str] = field(default_factory=dict)
    sensitive: set[str] = field(default_factory=set)
    _index: NameIndex = field(default_factory=lambda: NameIndex(()), init=False, repr=False)

    @classmethod
    def build(cls, paths: Iterable[str], records: Iterable[str], pseudonymizer: Pseudonymizer) -> SourceNames:
        """Collect the names of ``paths`` (manifest ``path`` values) and ``records`` (signal record names).

        >>> n = SourceNames.build(["a/DOE_JOHN_19700101.dcm"], [], Pseudonymizer(b"k" * 32))
        >>> sorted(n.sensitive)
        ['DOE_JOHN_19700101', 'DOE_JOHN_19700101.dcm', 'a', 'a/DOE_JOHN_19700101.dcm']
        """
        self = cls(pseudonymizer)
        file_id = pseudonymizer.id_function("file")
        folder_id = pseudonymizer.id_function("folder")
        for path in {str(p) for p in paths if p is not None and str(p)}:
            self.paths.add(path)
            folders, names, stems = path_parts(path)
            self.sensitive.update([path, *folders, *names, *stems])
            self.replacements[path] = file_id(path)
            for f in folders:
                self.replacements.setdefault(f, folder_id(f))
            for name in names:
                self.replacements.setdefault(name, file_id(name))
            for stem in stems:
                if not is_weak(stem):
                    self.replacements.setdefault(stem, file_id(stem))
        for rec in {str(r) for r in records if r is not None and str(r)}:
            self.records.add(rec)
            folders, names, stems = path_parts(rec)  # a record in a subfolder: "multi/s25047-2704-05-04"
            self.sensitive.update([rec, *folders, *names, *stems])
            self.replacements[rec] = self.record(rec)  # a record name wins over a stem of the same text
        self._index = NameIndex(k for k in self.replacements if not is_weak(k) or "/" in k or "." in k)
        return self

    def path(self, path: str) -> str:
        """Keyed pseudonym of a manifest path (``fil-...``), the same in every table."""
        return self.pseudonymizer.id(path, "file")

    def record(self, record: str) -> str:
        """Keyed pseudonym of a signal record name (``sig-...``), the same in every table."""
        return self.pseudonymizer.id(record, "signal")

    def scrub(self, text: str) -> str:
        """``text`` with its names replaced by pseudonyms, token-aware.

        Every known path, folder, file name, stem and record name becomes its pseudonym, except a
        lowercase word of medmm's own messages (:func:`is_plain_word`: a file ``empty.dcm``
        does not turn "file is empty" into "file is fil-...") and names too short to tell from ordinary
        words (:func:`is_weak`). Then any other token that looks like a name
        (:func:`~medmm.share.words.looks_like_name`: a path, a file name with a data extension, a code
        of four or more digits), known to the run or not, becomes ``fil-`` + its keyed pseudonym (the
        missing segment ``3269321_0003.hea`` a reason names).

        >>> p = Pseudonymizer(b"k" * 32)
        >>> names = SourceNames.build(["empty.dcm"], [], p)
        >>> names.scrub("file is empty")
        'file is empty'
        >>> out = names.scrub("segment 3269321_0003.hea is missing")
        >>> out == f"segment {p.id('3269321_0003.hea', 'file')} is missing"
        True
        """
        return self.scrub_known(text, unknown=True)

    def scrub_known(self, text: str, unknown: bool = False) -> str:
        """``text`` with the known names replaced as :meth:`scrub` does; other tokens that look like names
        too when ``unknown`` (channel names and window file names such as ``MLII.npy`` are not names)."""
        if not text:
            return text
        words = medmm_words()
        hits = [h for h in self._index.find(text) if not is_plain_word(h[2], words)]
        out, last = [], 0
        rest = (lambda part: _scrub_unknown(part, self.pseudonymizer)) if unknown else (lambda part: part)
        for start, end, name in hits:
            out += [rest(text[last:start]), self.replacements[name]]
            last = end
        out.append(rest(text[last:]))
        return "".join(out)


def _scrub_unknown(text: str, pseudonymizer: Pseudonymizer) -> str:
    """``text`` with every token that :func:`~medmm.share.words.looks_like_name` replaced by ``fil-...``."""
    tokens = name_tokens(text)
    if not tokens:
        return text
    out, last = [], 0
    for start, end, token in tokens:
        out += [text[last:start], pseudonymizer.id(token, "file")]
        last = end
    out.append(text[last:])
    return "".join(out)
