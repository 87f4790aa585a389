"""Remove a file's own patient identity from free-text event labels (EDF+ annotations).

EDF+ annotations are free text typed at the bedside or the sleep lab (``"Lights off"``, ``"Patient
Müller moved"``). The header of the same file names the patient (EDF+ *local patient identification*:
code, birth date, name), so every spelling of those values in a label is replaced by ``[redacted]``
before the label leaves the reader. EDF headers are ASCII, so ``Mueller`` also matches ``Müller`` /
``Muller`` and ``Juergen`` matches ``Jürgen`` in the UTF-8 annotation text; the birth date matches in its
usual written forms (``04.03.1909``, ``1909-03-04``, ``04-MAR-1909``, ``4 March 1909`` ...).

Other text (a nurse's name, a different patient's name) cannot be recognised this way: keep such
annotations out of exports, or leave ``--anchor-events`` labels generic.

>>> red = IdentityRedactor(["Mueller_Juergen", "MRN-4711"], birthdate="04 mar 1909")
>>> red("Patient Jürgen Müller moved (MRN-4711, born 04.03.1909)")
'Patient [redacted] [redacted] moved ([redacted], born [redacted])'
>>> red("Lights off")
'Lights off'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime

__all__ = ["REDACTED", "IdentityRedactor"]

REDACTED = "[redacted]"
_FOLD = {
    "ae": "(?:ae|ä|æ|a)",
    "oe": "(?:oe|ö|ø|o)",
    "ue": "(?:ue|ü|u)",
    "ss": "(?:ss|ß)",
}
_ACCENTS = {
    "a": "[aàáâãäåā]",
    "c": "[cçč]",
    "e": "[eèéêëē]",
    "i": "[iìíîïī]",
    "n": "[nñ]",
    "o": "[oòóôõöøō]",
    "s": "[sšś]",
    "u": "[uùúûüū]",
    "y": "[yýÿ]",
    "z": "[zžź]",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def _word_pattern(word: str) -> str:
    """Regex for ``word`` (ASCII from an EDF header) that also matches its accented spellings."""
    out, i, low = [], 0, word.lower()
    while i < len(low):
        pair = low[i : i + 2]
        if pair in _FOLD:
            out.append(_FOLD[pair])
            i += 2
            continue
        out.append(_ACCENTS.get(low[i], re.escape(low[i])))
        i += 1
    return "".join(out)


def _parse_date(text: str) -> date | None:
    for fmt in ("%d %b %Y", "%d-%b-%Y", "%d.%m.%Y", "%Y-%m-%d", "%d %B %Y"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def _date_patterns(d: date) -> list[str]:
    day, mon, year = d.day, d.month, d.year
    name = _MONTHS[mon - 1]
    num = [
        rf"0?{day}\s*[./-]\s*0?{mon}\s*[./-]\s*(?:{year}|{year % 100:02d})",  # 04.03.1909, 4/3/09
        rf"0?{mon}\s*/\s*0?{day}\s*/\s*(?:{year}|{year % 100:02d})",  # US 03/04/1909
        rf"{year}\s*[./-]\s*0?{mon}\s*[./-]\s*0?{day}",  # 1909-03-04
        rf"0?{day}\.?[\s-]*{name}[a-z]*\.?[\s-]*{year}",  # 04-MAR-1909, 4 March 1909
        rf"{name}[a-z]*\.?\s+0?{day},?\s+{year}",  # March 4, 1909
    ]
    return [rf"(?<!\d){p}(?!\d)" for p in num]


class IdentityRedactor:
    """Replace the given identity values in a text by :data:`REDACTED` (see module doc).

    Parameters
    ----------
    values
        Name and code fields of the header (``"Mueller_Juergen"``, ``"MRN-4711"``); split on spaces,
        ``_`` and ``,``; parts shorter than 3 characters (initials, ``X``) are ignored, the whole value
        is always matched.
    birthdate
        The header's birth date as text (``"04 mar 1909"``, ``"04-MAR-1909"``, ``"1909-03-04"``).
    """

    def __init__(self, values: Iterable[str], birthdate: str = "") -> None:
        words: set[str] = set()
        for v in values:
            v = str(v or "").strip()
            if not v or v.upper() == "X":
                continue
            words.add(v)
            words.update(p for p in re.split(r"[\s_,]+", v) if len(p) >= 3)
        patterns = [rf"(?<!\w){_word_pattern(w)}(?!\w)" for w in sorted(words, key=len, reverse=True)]
        d = _parse_date(birthdate) if birthdate else None
        if d is not None:
            patterns += _date_patterns(d)
        self._re = re.compile("|".join(patterns), re.IGNORECASE) if patterns else None

    def __call__(self, text: str) -> str:
        """``text`` with every identity value replaced."""
        return text if self._re is None else self._re.sub(REDACTED, text)
