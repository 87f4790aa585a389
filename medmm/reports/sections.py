"""Section detection: split a report into INDICATION / COMPARISON / FINDINGS / IMPRESSION ... spans.

Header variants live in ``data/sections.yaml``. A header is a variant at the start of a line (or after
a sentence end) followed by ``:``, or alone on its line. Text before the first header (or a report
without headers) is ``BODY``. A reason-for-exam section (``paragraph`` in the YAML: INDICATION, HISTORY,
COMPARISON, TECHNIQUE) ends at its first paragraph break (a blank line): text after the break that has no
header of its own is the report body (``BODY``), as in templates that write the findings without a
``FINDINGS:`` header. FINDINGS and IMPRESSION may span paragraphs.

>>> [(s.name, s.body_start) for s in find_sections("INDICATION: cough\\nFINDINGS: No effusion.")]
[('INDICATION', 12), ('FINDINGS', 28)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from medmm.reports.lexicon import load_data

__all__ = ["Section", "find_sections", "paragraph_sections", "scored_sections", "section_at"]

_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")  # a blank line (also with CRLF line ends)
_CONTENT = re.compile(r"\S")


@dataclass(frozen=True)
class Section:
    """A section of a report: ``name`` (canonical, upper case), header start, body start and end."""

    name: str
    start: int
    body_start: int
    end: int


@lru_cache(maxsize=1)
def _header_regex() -> tuple[re.Pattern[str], dict[str, str]]:
    spec = load_data("sections.yaml")["sections"]
    canon: dict[str, str] = {}
    for name, variants in spec.items():
        canon[name.lower()] = name
        for v in variants:
            canon[str(v).lower()] = name
    alts = "|".join(re.escape(v).replace(r"\ ", r"\s+") for v in sorted(canon, key=len, reverse=True))
    # compound headers: "FINDINGS/IMPRESSION:", "Findings and impression:", "IMPRESSION & RECOMMENDATION:"
    head = rf"(?:{alts})(?:[ \t]*(?:/|&|\band\b)[ \t]*(?:{alts}))*"
    pattern = re.compile(
        rf"(?:^|(?<=[.\n]))[ \t]*(?P<h>{head})[ \t]*(?::|(?=[ \t]*\n)|$)[ \t]*",
        re.IGNORECASE | re.MULTILINE,
    )
    return pattern, canon


def _canonical(header: str, canon: dict[str, str]) -> str:
    """Section of a (lower-case, single-spaced) header; a compound header takes its first scored part
    ("findings/impression" -> FINDINGS, "history and findings" -> FINDINGS), else its first part
    ("indication/history" -> INDICATION), so findings under a compound header are never unscored.

    >>> _canonical("impression and recommendation", {"impression": "IMPRESSION", "recommendation": "X"})
    'IMPRESSION'
    """
    if header in canon:
        return canon[header]
    parts = [canon[p.strip()] for p in re.split(r"/|&|\band\b", header) if p.strip() in canon]
    scored = [p for p in parts if p in scored_sections()]
    return (scored or parts)[0]


@lru_cache(maxsize=1)
def scored_sections() -> frozenset[str]:
    """Sections whose mentions decide report-level findings (``FINDINGS``, ``IMPRESSION``, ``BODY``)."""
    return frozenset(load_data("sections.yaml")["scored"])


@lru_cache(maxsize=1)
def paragraph_sections() -> frozenset[str]:
    """Sections that end at their first paragraph break (``INDICATION``, ``HISTORY``, ``COMPARISON``,
    ``TECHNIQUE``): the headerless text after the break is ``BODY``.

    >>> sorted(paragraph_sections())
    ['COMPARISON', 'HISTORY', 'INDICATION', 'TECHNIQUE']
    """
    return frozenset(load_data("sections.yaml")["paragraph"])


def _body_after_break(text: str, body_start: int, end: int) -> int | None:
    """Start of the first non-blank text after the first paragraph break that follows the section's own
    text in ``text[body_start:end]``; ``None`` when there is none (one paragraph, or blank lines only).

    >>> _body_after_break("HISTORY: cough.\\n\\nHeart enlarged.", 9, 32)
    17
    >>> _body_after_break("HISTORY:\\n\\ncough.", 8, 16) is None
    True
    """
    own = _CONTENT.search(text, body_start, end)
    if own is None:
        return None
    brk = _BREAK.search(text, own.end(), end)
    if brk is None:
        return None
    rest = _CONTENT.search(text, brk.end(), end)
    return None if rest is None else rest.start()


def find_sections(text: str) -> list[Section]:
    """Sections of ``text`` in order; they cover the text from the first header (or 0) to its end.

    Parameters
    ----------
    text
        A report (free text, or sections already joined under ``NAME:`` headers).

    >>> [s.name for s in find_sections("Clinical history: fall. Impression: no fracture.")]
    ['HISTORY', 'IMPRESSION']
    >>> find_sections("Lungs are clear.")[0].name
    'BODY'
    >>> [s.name for s in find_sections("HISTORY: Cough.\\n\\nThe heart is enlarged.")]
    ['HISTORY', 'BODY']
    """
    pattern, canon = _header_regex()
    hits = []
    for m in pattern.finditer(text):
        header = re.sub(r"\s+", " ", m.group("h").lower())
        line_alone = ":" not in m.group(0)
        if line_alone and text[m.start() : m.end()].strip() != m.group("h"):
            continue
        if line_alone and not m.group("h").isupper():
            continue  # a bare word on its own line is a header only when written in capitals
        hits.append((m.start(), m.end(), _canonical(header, canon)))
    out: list[Section] = []
    if not hits or text[: hits[0][0]].strip():
        out.append(Section("BODY", 0, 0, hits[0][0] if hits else len(text)))
    bounded = paragraph_sections()
    for i, (start, body_start, name) in enumerate(hits):
        end = hits[i + 1][0] if i + 1 < len(hits) else len(text)
        body = _body_after_break(text, body_start, end) if name in bounded else None
        if body is None:
            out.append(Section(name, start, body_start, end))
        else:  # each character is searched once: linear in the text
            out.append(Section(name, start, body_start, body))
            out.append(Section("BODY", body, body, end))
    return out


def section_at(sections: list[Section], offset: int) -> str:
    """Name of the section holding character ``offset``.

    >>> section_at(find_sections("FINDINGS: a. IMPRESSION: b."), 26)
    'IMPRESSION'
    """
    name = sections[0].name if sections else "BODY"
    for s in sections:
        if s.start <= offset:
            name = s.name
        else:
            break
    return name
