"""Build the spaCy pipeline of the reports stage (lexicon only, or a model plus the lexicon).

Order: scispaCy tokenizer -> sentences (the model's parser, else spaCy's rule sentencizer; every
line break also starts a sentence) -> the model's ``ner`` (when a model is given) -> EntityRuler of
the radiology lexicon (``data/findings.yaml``, ``data/anatomy.yaml``; it wins where it overlaps a model
entity) -> redaction filter (no entity from ``XXXX``) -> scispaCy ``AbbreviationDetector`` ->
NegEx-style assertion (:mod:`medmm.reports.negation`).

Pipelines are cached per process by :class:`PipelineSpec` so a Dask worker loads its model once.

>>> PipelineSpec().describe().split(' (')[0]
'lexicon:radiology-v1'
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from medmm.errors import ConfigError
from medmm.reports.lexicon import LEXICON_SOURCE, load_lexicon

__all__ = [
    "INSTALL_HINT",
    "PipelineSpec",
    "build_pipeline",
    "check_model",
    "get_pipeline",
    "installed_models",
    "rules_fingerprint",
    "source_of",
]

INSTALL_HINT = (
    "install a scispaCy model from its releases, e.g. "
    "`pip install https://s3-us-west-2.amazonaws.com/ai2-s2-scispacy/releases/v0.5.4/"
    "en_core_sci_sm-0.5.4.tar.gz`, "
    "or pass the path of a saved spaCy pipeline"
)
_REDACTED = re.compile(r"X{3,}|x{4,}")
_CACHE: dict[PipelineSpec, Any] = {}


@dataclass(frozen=True)
class PipelineSpec:
    """What pipeline to build: ``model`` (installed package name or path; ``None`` = lexicon only)."""

    model: str | None = None
    lexicon: bool = True

    def model_source(self) -> str | None:
        """``source`` tag of the model's entities: ``model:<name>`` or ``model:<dir>-<path hash>``."""
        if self.model is None:
            return None
        path = Path(self.model).expanduser()
        if path.exists():
            digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
            return f"model:{path.name}-{digest}"
        return f"model:{self.model}"

    def describe(self) -> str:
        """One line naming the pipeline, printed by the CLI and written to ``run.json``."""
        steps = "scispaCy tokenizer, sentencizer, EntityRuler, AbbreviationDetector, NegEx-style assertion"
        if self.model is None:
            return f"{LEXICON_SOURCE} ({steps})"
        return f"{self.model_source()} NER + {LEXICON_SOURCE} ({steps})"


@lru_cache(maxsize=1)
def rules_fingerprint() -> str:
    """A short hash of the stage's rules: the lexicon and trigger files (``data/*.yaml``) and the code of
    ``medmm/reports`` (extraction, negation, sections, measurements, labels ...).

    Part of each report's resume key (through the pipeline line of ``run.json``), so a re-run after
    medmm or its lexicon changed parses every report again instead of keeping results made by the old
    rules.

    >>> len(rules_fingerprint())
    12
    """
    return fingerprint_of(Path(__file__).parent)


def fingerprint_of(root: Path) -> str:
    """:func:`rules_fingerprint` of the stage's folder ``root`` (every ``*.py`` and ``data/*.yaml``).

    >>> fingerprint_of(Path(__file__).parent) == rules_fingerprint()
    True
    """
    h = hashlib.blake2b(b"medmm-reports-rules", digest_size=6)
    for path in sorted([*root.rglob("*.py"), *root.glob("data/*.yaml")]):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def installed_models() -> list[str]:
    """Names of the spaCy/scispaCy pipeline packages installed in this environment.

    >>> isinstance(installed_models(), list)
    True
    """
    import spacy.util

    return sorted(spacy.util.get_installed_models())


def check_model(spec: PipelineSpec) -> None:
    """Fail fast, without building anything, when ``spec.model`` is neither an installed spaCy package
    nor a saved pipeline folder (:class:`~medmm.errors.ConfigError` listing the installed ones).

    >>> check_model(PipelineSpec())  # the lexicon needs no model
    """
    if spec.model is not None:
        _model_location(spec.model)
    load_lexicon()


def _model_location(name: str) -> Path | str:
    """The folder or package name to ``spacy.load`` for ``name``; raises for anything else."""
    import spacy.util

    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.cfg").exists():
            raise ConfigError(
                f"--model {name}: the folder has no config.cfg, so it is not a saved spaCy pipeline; "
                f"{INSTALL_HINT}"
            )
        return path
    if spacy.util.is_package(name):
        return name
    found = installed_models()
    raise ConfigError(
        f"--model {name!r} is neither an installed spaCy package nor an existing path; installed: "
        f"{found or 'none'}. Leave --model out for the built-in radiology lexicon, or {INSTALL_HINT}"
    )


def _load_model(name: str) -> Any:
    import spacy

    return spacy.load(_model_location(name))


def _register_components() -> None:
    from spacy.language import Language

    if not Language.has_factory("medmm_line_sents"):

        @Language.component("medmm_line_sents")
        def line_sents(doc: Any) -> Any:
            # the token after one holding a line break starts a sentence (line breaks are space tokens)
            from spacy.attrs import IS_SPACE

            for i in doc.to_array(IS_SPACE).nonzero()[0]:
                if i + 1 < len(doc) and "\n" in doc[int(i)].text:
                    doc[int(i) + 1].is_sent_start = True
            return doc

    if not Language.has_factory("medmm_redaction_filter"):

        @Language.component("medmm_redaction_filter")
        def redaction_filter(doc: Any) -> Any:
            # a redaction token may sit inside a lexicon pattern ("heart size XXXX enlarged") but never
            # starts or ends an entity, and model entities containing one are dropped
            ents = doc.ents
            keep = [
                e
                for e in ents
                if not (_REDACTED.search(e[0].text) or _REDACTED.search(e[-1].text))
                and not (not e.id_ and _REDACTED.search(e.text))  # id_: pattern id (ent_id_ is slow)
            ]
            if len(keep) != len(ents):
                doc.ents = keep
            return doc


def _split_slashes(nlp: Any) -> None:
    """Also split ``atelectasis/scarring`` at the slash (letters on both sides), so each term matches."""
    old = nlp.tokenizer.infix_finditer
    pattern = getattr(getattr(old, "__self__", None), "pattern", None)
    if pattern:
        nlp.tokenizer.infix_finditer = re.compile(pattern + r"|(?<=[A-Za-z]{2})/(?=[A-Za-z]{2})").finditer


def build_pipeline(spec: PipelineSpec) -> Any:
    """A new ``spacy.Language`` for ``spec`` (uncached; see :func:`get_pipeline`).

    Raises :class:`~medmm.errors.ConfigError` for an unknown model, listing the installed ones.
    """
    import spacy
    from scispacy.abbreviation import AbbreviationDetector  # noqa: F401  (registers the factory)
    from scispacy.custom_tokenizer import combined_rule_tokenizer

    from medmm.reports.negation import make_assertion_component

    _register_components()
    if spec.model is None:
        nlp = spacy.blank("en")
        nlp.tokenizer = combined_rule_tokenizer(nlp)
        _split_slashes(nlp)
    else:
        nlp = _load_model(spec.model)
        keep = {"tok2vec", "ner", "parser", "tagger", "attribute_ruler", "lemmatizer", "transformer"}
        for name in list(nlp.pipe_names):
            if name not in keep:
                nlp.remove_pipe(name)
    if "parser" not in nlp.pipe_names and "senter" not in nlp.pipe_names:
        first = nlp.pipe_names[0] if nlp.pipe_names else None
        nlp.add_pipe("sentencizer", before=first) if first else nlp.add_pipe("sentencizer")
        nlp.add_pipe("medmm_line_sents", after="sentencizer")
    if spec.lexicon:
        ruler = nlp.add_pipe(
            "entity_ruler",
            name="medmm_lexicon",
            config={"phrase_matcher_attr": "LOWER", "overwrite_ents": True, "validate": True},
        )
        ruler.add_patterns(load_lexicon().ruler_patterns())  # type: ignore[attr-defined]
    nlp.add_pipe("medmm_redaction_filter")
    nlp.add_pipe("abbreviation_detector")
    make_assertion_component(nlp)
    return nlp


def get_pipeline(spec: PipelineSpec) -> Any:
    """The pipeline for ``spec``, built once per process (a Dask worker keeps it between tasks).

    After building, the objects alive so far (the pipeline's vocabulary, patterns, lexicon) are moved
    out of the garbage collector's generations (``gc.freeze``): the cyclic GC otherwise re-scans
    them on every full collection, which the many short-lived tokens of ``nlp.pipe`` trigger often
    (about 20% of the CPU time of a parse).
    """
    if spec not in _CACHE:
        import gc

        _CACHE[spec] = build_pipeline(spec)
        gc.collect()
        gc.freeze()
    return _CACHE[spec]


def source_of(ent: Any, spec: PipelineSpec) -> str:
    """Which step produced ``ent``: the lexicon (its pattern id is set) or the model."""
    if ent.ent_id_ and spec.lexicon:
        return LEXICON_SOURCE
    return spec.model_source() or LEXICON_SOURCE
