"""The curated radiology lexicon (``data/*.yaml``) as data and as spaCy EntityRuler patterns.

Vocabulary, synonyms, anatomy, section headers and assertion triggers are data files in
``medmm/reports/data/``; this module only reads them.

>>> lex = load_lexicon()
>>> lex.finding_of("Effusions")
'pleural effusion'
>>> "granuloma" in lex.core
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["LEXICON_SOURCE", "Lexicon", "load_data", "load_lexicon"]

#: Value of the ``source`` column for entities found by the lexicon.
LEXICON_SOURCE = "lexicon:radiology-v1"


@cache
def load_data(name: str) -> dict[str, Any]:
    """Parse ``medmm/reports/data/<name>`` (YAML).

    >>> load_data("sections.yaml")["version"]
    'radiology-v1'
    """
    text = resources.files("medmm.reports").joinpath("data", name).read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


@dataclass(frozen=True)
class Lexicon:
    """Findings (name -> kind), phrase -> finding, anatomy phrase -> canonical location."""

    kinds: dict[str, str]
    phrases: dict[str, str]
    token_patterns: list[tuple[str, list[dict[str, Any]]]]
    anatomy: dict[str, str]
    version: str = "radiology-v1"
    core: tuple[str, ...] = field(default=())

    def finding_of(self, text: str) -> str | None:
        """The vocabulary name of a phrase (case- and space-insensitive), or ``None``."""
        return self.phrases.get(" ".join(text.lower().split()))

    def label_of(self, finding: str) -> str:
        """Entity label of a finding: ``DEVICE`` for devices, else ``FINDING``."""
        return "DEVICE" if self.kinds.get(finding) == "device" else "FINDING"

    def ruler_patterns(self) -> list[dict[str, Any]]:
        """EntityRuler patterns: phrase patterns (string) and token patterns, ``id`` = finding/location."""
        out: list[dict[str, Any]] = []
        for phrase, finding in self.phrases.items():
            out.append({"label": self.label_of(finding), "pattern": phrase, "id": finding})
        for finding, pattern in self.token_patterns:
            out.append({"label": self.label_of(finding), "pattern": pattern, "id": finding})
        for phrase, location in self.anatomy.items():
            out.append({"label": "ANATOMY", "pattern": phrase, "id": location})
        return out


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """Read ``findings.yaml`` and ``anatomy.yaml`` into a :class:`Lexicon` (cached)."""
    spec = load_data("findings.yaml")
    kinds: dict[str, str] = {}
    phrases: dict[str, str] = {}
    token_patterns: list[tuple[str, list[dict[str, Any]]]] = []
    for item in spec["findings"]:
        name = str(item["name"]).lower()
        kinds[name] = str(item.get("kind", "other"))
        for phrase in item.get("phrases", []):
            key = " ".join(str(phrase).lower().split())
            if key in phrases and phrases[key] != name:
                raise ValueError(
                    f"findings.yaml: phrase {key!r} is listed under {phrases[key]!r} and {name!r}"
                )
            phrases[key] = name
        for pattern in item.get("patterns", []) or []:
            token_patterns.append((name, pattern))
    anatomy: dict[str, str] = {}
    for group in load_data("anatomy.yaml")["locations"]:
        for phrase in group:
            anatomy[" ".join(str(phrase).lower().split())] = str(group[0])
    core = tuple(n for n, k in kinds.items() if k == "core")
    return Lexicon(kinds, phrases, token_patterns, anatomy, str(spec.get("version", "radiology-v1")), core)
