"""Channel name normalization: many spellings of one lead or sensor become one canonical name.

The synonyms live in a data table (``channel_synonyms.csv``: ``synonym,name,kind``) so a site can
read and extend it; lookup keys are the raw label in Unicode compatibility form (``SpO₂`` -> ``SpO2``),
without accents, lowercased, with spaces, ``_``, ``-``, ``.``, a ``lead`` prefix and ``(einthoven)``
removed. A label the table does not hold is tried again without a lead word (``Ableitung``,
``Dérivation``, ``Derivación``, ``Derivazione``; then ``1``/``2``/``3`` are the limb leads I/II/III) or an
``ECG``/``EKG`` prefix or suffix (``ECG II``, ``aVF-ECG``), and a numbered sensor (``ART1``, ``PLETH2``)
takes its kind from the label without the number (and keeps the number in its name).

>>> normalize_channel("Lead II")
ChannelName(name='II', kind='ecg', known=True)
>>> normalize_channel("avf").name, normalize_channel("Pleth").name, normalize_channel("ART").name
('aVF', 'PLETH', 'ABP')
>>> normalize_channel("ECG 2")
ChannelName(name='ECG2', kind='ecg', known=False)
>>> [normalize_channel(x).name for x in ("ECG II", "Ableitung II", "Lead 2", "DII", "SpO₂")]
['II', 'II', 'II', 'II', 'SpO2']
>>> normalize_channel("ART1")
ChannelName(name='ABP1', kind='pressure', known=True)
"""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

__all__ = ["ChannelName", "channel_key", "load_synonyms", "normalize_channel"]

_DROP = re.compile(r"[\s_\-./]+")
_EINTHOVEN = re.compile(r"\((einthoven|goldberger|wilson)\)", re.IGNORECASE)
_LEAD_WORD = re.compile(r"^(ableitung|derivation|derivacion|derivazione|derivacao)")
_ECG_WORD = re.compile(r"^(ecg|ekg)|(ecg|ekg)$")
_LIMB = {"1": "i", "2": "ii", "3": "iii"}
_NUMBERED = re.compile(r"^(.*[a-z])(\d+)$")


class ChannelName(NamedTuple):
    """Canonical ``name``, signal ``kind`` (ecg, pressure, pleth, resp, vital, eeg ...), ``known``."""

    name: str
    kind: str
    known: bool


def channel_key(label: str) -> str:
    """Lookup key of a raw label.

    >>> channel_key(" Lead aVR (Einthoven) ")
    'avr'
    """
    text = unicodedata.normalize("NFKD", label)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _EINTHOVEN.sub("", text).strip().lower()
    text = _DROP.sub("", text)
    if text.startswith("lead") and len(text) > 4:
        text = text[4:]
    return text


@lru_cache(maxsize=1)
def load_synonyms() -> dict[str, tuple[str, str]]:
    """The packaged synonym table: key -> (canonical name, kind).

    >>> load_synonyms()["mlii"]
    ('MLII', 'ecg')
    """
    text = resources.files("medmm.signals").joinpath("channel_synonyms.csv").read_text()
    out: dict[str, tuple[str, str]] = {}
    for row in csv.DictReader(text.splitlines()):
        out[channel_key(row["synonym"])] = (row["name"], row["kind"])
    return out


def _lookup(key: str, table: dict[str, tuple[str, str]]) -> ChannelName | None:
    """The table entry of ``key``, or of ``key`` without a lead word / ECG word / sensor number."""
    if key in table:
        return ChannelName(*table[key], True)
    for word in (_LEAD_WORD, _ECG_WORD):
        rest = word.sub("", key)
        if rest == key or not rest:
            continue
        lead_word = word is _LEAD_WORD
        if rest.startswith("lead") and len(rest) > 4:  # "ECG Lead II"
            rest, lead_word = rest[4:], True
        if lead_word:  # after a lead word, 1/2/3 are the limb leads ("ECG 2" is a channel number)
            rest = _LIMB.get(rest, rest)
        if rest != "ecg" and table.get(rest, ("", ""))[1] == "ecg":
            return ChannelName(*table[rest], True)
    m = _NUMBERED.match(key)
    if m and m.group(1) in table and table[m.group(1)][1] in ("pressure", "pleth", "resp"):
        name, kind = table[m.group(1)]
        return ChannelName(f"{name}{m.group(2)}", kind, True)
    return None


def normalize_channel(label: str) -> ChannelName:
    """Canonical name and kind of a raw channel label.

    Unknown labels keep their own spelling with spaces removed (``"ECG 2"`` -> ``"ECG2"``); their kind
    is guessed from a known prefix (``ecg``/``ekg`` -> ecg, ``eeg`` -> eeg) or ``"other"``.

    >>> normalize_channel("weird sensor")
    ChannelName(name='weirdsensor', kind='other', known=False)
    """
    key = channel_key(label)
    table = load_synonyms()
    if key in _LIMB and re.match(r"\s*lead", label, re.IGNORECASE):  # "Lead 2": limb lead II
        key = _LIMB[key]
    found = _lookup(key, table)
    if found is not None:
        return found
    raw = re.sub(r"\s+", "", unicodedata.normalize("NFKC", label).strip()) or "unnamed"
    for prefix, kind in (("ecg", "ecg"), ("ekg", "ecg"), ("eeg", "eeg"), ("eog", "eog"), ("emg", "emg")):
        if key.startswith(prefix):
            return ChannelName(raw, kind, False)
    return ChannelName(raw, "other", False)
