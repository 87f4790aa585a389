"""Channel name normalization: many spellings of one lead or sensor become one canonical name.

The synonyms live in a data table (``channel_synonyms.csv``: ``synonym,name,kind``) so a site can
read and extend it; lookup keys are the raw label lowercased with spaces, ``_``, ``-``, ``.``, the
words ``lead`` prefixes and ``(einthoven)`` removed.

>>> normalize_channel("Lead II")
ChannelName(name='II', kind='ecg', known=True)
>>> normalize_channel("avf").name, normalize_channel("Pleth").name, normalize_channel("ART").name
('aVF', 'PLETH', 'ABP')
>>> normalize_channel("ECG 2")
ChannelName(name='ECG2', kind='ecg', known=False)
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

__all__ = ["ChannelName", "channel_key", "load_synonyms", "normalize_channel"]

_DROP = re.compile(r"[\s_\-./]+")
_EINTHOVEN = re.compile(r"\((einthoven|goldberger|wilson)\)", re.IGNORECASE)


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
    text = _EINTHOVEN.sub("", label).strip().lower()
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


def normalize_channel(label: str) -> ChannelName:
    """Canonical name and kind of a raw channel label.

    Unknown labels keep their own spelling with spaces removed (``"ECG 2"`` -> ``"ECG2"``); their kind
    is guessed from a known prefix (``ecg``/``ekg`` -> ecg, ``eeg`` -> eeg) or ``"other"``.

    >>> normalize_channel("weird sensor")
    ChannelName(name='weirdsensor', kind='other', known=False)
    """
    key = channel_key(label)
    table = load_synonyms()
    if key in table:
        name, kind = table[key]
        return ChannelName(name, kind, True)
    raw = re.sub(r"\s+", "", label.strip()) or "unnamed"
    for prefix, kind in (("ecg", "ecg"), ("ekg", "ecg"), ("eeg", "eeg"), ("eog", "eog"), ("emg", "emg")):
        if key.startswith(prefix):
            return ChannelName(raw, kind, False)
    return ChannelName(raw, "other", False)
