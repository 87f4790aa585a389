"""Which tokens of a free text (a manifest reason, a warning) are names, and which are medmm's own words.

Reasons are written by medmm's stages from a fixed text and the names of the input (``MissingSegmentError:
multi-segment/p000878/p000878-2137-10-26-16-57.hea: segment 3269321_0003 is listed but 3269321_0003.hea is
missing. Fix: copy every segment of the record``). A share must replace the names, also those no manifest
knows (the missing segment above), and keep medmm's words, also those that happen to be a file stem of
the archive (the demo's ``empty.dcm`` must not turn "file is empty" into "file is fil-...").

:func:`medmm_words` is the vocabulary of medmm's own messages: every word and token of the string
constants in medmm's source (docstrings excepted: they hold example names). :func:`looks_like_name`
tells a token that is a name whether known or not: it holds a path separator, ends in a data-file
extension, or is a code with at least four digits (a segment, record or accession number, a date, a
DICOM instance UID), and is not a number, a keyed pseudonym, a content hash, a URL, a DICOM standard UID
(``1.2.840.10008.``) or a token of medmm's own messages (codes with four or more digits excepted: those
in medmm's source are examples and test names, ``19700101``).

>>> looks_like_name("3269321_0003.hea"), looks_like_name("3269321_0003"), looks_like_name("a/b.dcm")
(True, True, True)
>>> looks_like_name("empty"), looks_like_name("650000"), looks_like_name("run.json")
(False, False, False)
>>> "empty" in medmm_words()
True
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

__all__ = ["DATA_EXTENSIONS", "looks_like_name", "medmm_words", "name_tokens"]

#: File extensions of the inputs medmm reads (and their usual companions): a token ending in one is a
#: file name, known or not.
DATA_EXTENSIONS: tuple[str, ...] = (
    *(".dcm", ".dicom", ".ima", ".nii", ".nii.gz", ".gz", ".zip", ".tar", ".mha", ".mhd", ".nrrd", ".raw"),
    *(".hea", ".dat", ".atr", ".qrs", ".ecg", ".edf", ".bdf", ".rec", ".mat", ".xml", ".npy", ".npz"),
    *(".csv", ".tsv", ".txt", ".json", ".jsonl", ".parquet", ".hl7", ".rtf", ".pdf", ".doc", ".docx"),
    *(".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".xyz"),
)
#: Characters trimmed from both ends of a whitespace-separated token before it is judged.
_TRIM = "\"'`()[]{}<>,;:!?"
_PSEUDONYM = re.compile(r"^[a-z]{3}-[0-9a-f]{20}$")
_DIGEST = re.compile(r"^(sha256:)?[0-9a-f]{32,}$")  # a content hash medmm prints (model_sha256 ...)
_MIN_CODE_DIGITS = 4


def _docstring_ids(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


@lru_cache(maxsize=1)
def medmm_words() -> frozenset[str]:
    """Words and tokens of medmm's own messages: the string constants of its source, docstrings excepted.

    Each constant gives its alphabetic words (``empty``, ``segment``) and its whitespace tokens trimmed
    of punctuation (``run.json``, ``--keep-report-ids``). Read once per process (~0.5 s).

    >>> {"missing", "Fix"} <= medmm_words(), "DOE" in medmm_words()
    (True, False)
    """
    import medmm

    words: set[str] = set()
    for path in Path(medmm.__file__).parent.rglob("*.py"):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        skip = _docstring_ids(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                words.update(re.findall(r"[A-Za-z]+", node.value))
                words.update(t for t in (_trim(tok) for tok in node.value.split()) if t)
    return frozenset(words)


def _trim(token: str) -> str:
    token = token.strip(_TRIM)
    while token.endswith(".") and not token.endswith(".."):
        token = token[:-1].strip(_TRIM)
    return token


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?%?$")
#: The DICOM standard's own UIDs (transfer syntaxes, SOP classes) name no patient.
_DICOM_STANDARD_UID = "1.2.840.10008."


def _is_number(token: str) -> bool:
    return bool(_NUMBER.match(token))


def _digits(token: str) -> int:
    return sum(c.isdigit() for c in token)


def looks_like_name(token: str) -> bool:
    """Whether a (trimmed) token of a free text is a name of the input, known to the run or not."""
    if not token or _PSEUDONYM.match(token) or _DIGEST.match(token) or _is_number(token):
        return False
    if token.startswith(("http://", "https://", _DICOM_STANDARD_UID)):
        return False
    if token in medmm_words() and _digits(token) < _MIN_CODE_DIGITS:
        return False  # medmm's own token (run.json, docs/models.md); codes in its source are examples
    lower = token.lower()
    if "/" in token or "\\" in token:
        return len(token) > 3
    if any(lower.endswith(ext) and len(lower) > len(ext) for ext in DATA_EXTENSIONS):
        return True
    return _digits(token) >= _MIN_CODE_DIGITS


def name_tokens(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, token)`` of the tokens of ``text`` that :func:`looks_like_name`, left to right.

    >>> name_tokens("MissingSegmentError: x.hea: segment 3269321_0003 is listed.")
    [(21, 26, 'x.hea'), (36, 48, '3269321_0003')]
    """
    out = []
    for match in re.finditer(r"\S+", text):
        raw = match.group()
        token = _trim(raw)
        if token and looks_like_name(token):
            start = match.start() + raw.index(token)
            out.append((start, start + len(token), token))
    return out
