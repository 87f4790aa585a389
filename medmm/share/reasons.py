"""Free text of a shared table (a quarantine ``reason``, ``notes``, ``warnings``) reduced to medmm's own
words: safe by construction, not by spotting names.

A reason is ``ClassName: <path>: <problem>. Fix: <fix>`` (:func:`medmm.errors.reason_of`), where the
problem is medmm's text with the input's names and sometimes a third-party library's message inside it
(``cannot read the file (<pydicom's message>)``). Names that look like names (paths, file names, codes)
are replaced by :meth:`~medmm.share.names.SourceNames.scrub`; a bare word such as a patient's name in a
library's message does not look like anything. So after scrubbing, :func:`reduce_text` keeps only

* the reason's category: a leading exception class name (``InvalidDicomError:``), medmm's or a library's
  (an identifier ending in ``Error``, ``Exception``, ``Warning``, ...: a kind of problem, not a name);
* tokens whose every word is a word of medmm's own messages, exactly as written there, case included
  (:func:`~medmm.share.words.medmm_words`: the string constants of medmm's source, so every template
  medmm fills in), or of the DICOM standard's UID names (``RT Plan Storage``, ``Explicit VR Little
  Endian``: :func:`allowed_words`);
* keyed pseudonyms, numbers, content hashes, URLs and punctuation;

and replaces every other run of tokens by :data:`REMOVED`. Whatever a library wrote survives only in
the words medmm itself uses; a name survives only if medmm writes it as a word of its messages (a
capitalised month name such as ``May`` used in date parsing), which the share's documentation states.

>>> from medmm.pseudonym import Pseudonymizer
>>> from medmm.share.names import SourceNames
>>> names = SourceNames.build(["a/b.dcm"], [], Pseudonymizer(b"k" * 32))
>>> reduce_text("ValueError: a/b.dcm: cannot read the file (patient Qwzyxa Brannigan). Fix: re-export", names)
... # doctest: +ELLIPSIS
'ValueError: fil-...: cannot read the file (patient [text removed]). Fix: re-export'
"""

from __future__ import annotations

import re
from functools import lru_cache

from medmm.share.names import SourceNames
from medmm.share.words import medmm_words

__all__ = ["REMOVED", "allowed_words", "reduce_text", "removed_count"]

#: What replaces a run of tokens that are not medmm's words.
REMOVED = "[text removed]"

_CATEGORY = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_.]*(?:Error|Exception|Warning|Failure|Exit|Interrupt|Fault)):\s"
)
_PSEUDONYM = re.compile(r"[a-z]{3}-[0-9a-f]{20}")
_DIGEST = re.compile(r"(?:sha256:)?[0-9a-f]{32,}")
_URL = re.compile(r"https?://\S+")
_WORD = re.compile(r"[A-Za-z]+")
_PUNCTUATION = "()[]{}<>,;:!?\"'`"
#: whitespace, one punctuation character, or a run of anything else
_PIECES = re.compile(r"\s+|[()\[\]{}<>,;:!?\"'`]|[^\s()\[\]{}<>,;:!?\"'`]+")


@lru_cache(maxsize=1)
def allowed_words() -> frozenset[str]:
    """:func:`~medmm.share.words.medmm_words`, the words of the DICOM standard's UID names (SOP
    classes, transfer syntaxes: pydicom's UID dictionary), which medmm's reasons quote, and the names of
    the file formats ingest recognises, upper-cased as its reasons write them (``MINC2``, ``MGH``).

    >>> {"Waveform", "Storage", "missing"} <= allowed_words(), "Brannigan" in allowed_words()
    (True, False)
    """
    extra: set[str] = set()
    try:
        from pydicom._uid_dict import UID_dictionary
    except ImportError:  # a pydicom without it: medmm's words only (more is removed, nothing leaks)
        UID_dictionary = {}
    for entry in UID_dictionary.values():
        extra.update(_WORD.findall(f"{entry[0]} {entry[1]}"))
    from medmm.ingest.sniff import Format  # ingest names formats upper-cased: "MINC2 image", "MGH image"

    for fmt in Format:
        extra.update(_WORD.findall(fmt.value.upper()))
    return medmm_words() | frozenset(extra)


def _safe_token(token: str, words: frozenset[str]) -> bool:
    """Whether every word of ``token`` (pseudonyms, hashes and URLs set aside) is a word of medmm's."""
    rest = _URL.sub(" ", token)
    rest = _DIGEST.sub(" ", _PSEUDONYM.sub(" ", rest))
    return all(w in words for w in _WORD.findall(rest))


def reduce_text(text: str, names: SourceNames) -> str:
    """``text`` scrubbed of the run's names (:meth:`SourceNames.scrub`), then reduced to its category
    and medmm's own words: each run of other tokens becomes :data:`REMOVED` (module docstring).

    Punctuation and the whitespace between kept tokens are kept; an empty text is returned as is.

    >>> from medmm.pseudonym import Pseudonymizer
    >>> names = SourceNames.build([], [], Pseudonymizer(b"k" * 32))
    >>> reduce_text("OSError: header of Qwzyxa^Brannigan, 12 bytes", names)
    'OSError: header of [text removed], 12 bytes'
    """
    if not text:
        return text
    scrubbed = names.scrub(text)
    words = allowed_words()
    match = _CATEGORY.match(scrubbed)
    head = scrubbed[: match.end()] if match else ""
    out, space, removed = [head], "", False
    for piece in _PIECES.findall(scrubbed[len(head) :]):
        if piece.isspace():
            space += piece
            continue
        if (len(piece) == 1 and piece in _PUNCTUATION) or _safe_token(piece, words):
            out.append(space + piece)
            removed = False
        elif not removed:  # the first token of a run of others: one marker for the run
            out.append(space + REMOVED)
            removed = True
        space = ""
    out.append(space)
    return "".join(out)


def removed_count(shared: str) -> int:
    """How many runs of text :func:`reduce_text` removed from a shared text.

    >>> removed_count("ValueError: [text removed] and [text removed]")
    2
    """
    return shared.count(REMOVED)
