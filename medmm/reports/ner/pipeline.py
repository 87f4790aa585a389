"""Build the spaCy NER pipeline medmm trains (scispaCy tokenizer, CNN tok2vec, transition NER) and the
Doc adapters between :class:`~medmm.reports.ner.corpus.NerDoc` records and spaCy.

Only spaCy's built-in architectures are used, and the scispaCy tokenizer is a plain
:class:`spacy.tokenizer.Tokenizer` whose prefix/suffix/infix rules are written to ``tokenizer`` in the
model folder (exactly how scispaCy's own ``en_core_sci_*`` packages ship it), so ``spacy.load(path)``
works without importing medmm or scispaCy and tokenizes raw text with scispaCy's rules.

>>> nlp = build_pipeline(["Chemical"], seed=0)
>>> nlp.pipe_names, uses_scispacy_tokenizer(nlp)
(['tok2vec', 'ner'], True)
>>> [t.text for t in nlp.make_doc("drug-induced hepatitis")]
['drug-induced', 'hepatitis']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from medmm.reports.ner.corpus import NerDoc

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc
    from spacy.training import Example

__all__ = [
    "DEFAULT_HYPERPARAMS",
    "build_pipeline",
    "doc_from_words",
    "examples_from_docs",
    "pipeline_config",
    "uses_scispacy_tokenizer",
]

#: Architecture settings, chosen on BC5CDR/NCBI devel (see docs/reports-ner.md). No pretrained vectors.
DEFAULT_HYPERPARAMS: dict[str, Any] = {
    "width": 128,
    "depth": 4,
    "window_size": 1,
    "maxout_pieces": 3,
    "rows": [20000, 5000, 5000, 5000],
    "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
    "hidden_width": 64,
}

_CONFIG = """
[nlp]
lang = "en"
pipeline = ["tok2vec","ner"]
batch_size = 256

[nlp.tokenizer]
@tokenizers = "spacy.Tokenizer.v1"

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.Tok2Vec.v2"

[components.tok2vec.model.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = {width}
attrs = {attrs}
rows = {rows}
include_static_vectors = false

[components.tok2vec.model.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = {width}
depth = {depth}
window_size = {window_size}
maxout_pieces = {maxout_pieces}

[components.ner]
factory = "ner"
incorrect_spans_key = null
moves = null
scorer = {{"@scorers":"spacy.ner_scorer.v1"}}
update_with_oracle_cut_size = 100

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
extra_state_tokens = false
hidden_width = {hidden_width}
maxout_pieces = 2
use_upper = true
nO = null

[components.ner.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = {width}
upstream = "*"
"""


def pipeline_config(hyperparams: Mapping[str, Any] | None = None) -> str:
    """The spaCy config (as text) for the NER pipeline, with ``hyperparams`` over the defaults.

    >>> "depth = 4" in pipeline_config()
    True
    """
    hp = {**DEFAULT_HYPERPARAMS, **(hyperparams or {})}
    unknown = set(hp) - set(DEFAULT_HYPERPARAMS)
    if unknown:
        raise ValueError(f"unknown hyperparameters {sorted(unknown)}; valid: {sorted(DEFAULT_HYPERPARAMS)}")
    hp["attrs"] = "[" + ",".join(f'"{a}"' for a in hp["attrs"]) + "]"
    hp["rows"] = "[" + ",".join(str(int(r)) for r in hp["rows"]) + "]"
    return _CONFIG.format(**hp)


def build_pipeline(
    labels: Iterable[str], *, seed: int = 0, hyperparams: Mapping[str, Any] | None = None
) -> Language:
    """A blank (untrained) English ``tok2vec`` + ``ner`` pipeline with scispaCy's tokenizer.

    Parameters
    ----------
    labels : iterable of str
        Entity labels the ``ner`` component will predict.
    seed : int
        Seeds spaCy/thinc/numpy before the weights are created.
    hyperparams : mapping, optional
        Overrides of :data:`DEFAULT_HYPERPARAMS`.

    >>> build_pipeline(["Disease"]).get_pipe("ner").labels
    ('Disease',)
    """
    import spacy
    from scispacy.custom_tokenizer import combined_rule_tokenizer

    spacy.util.fix_random_seed(seed)
    config = spacy.util.load_config_from_str(pipeline_config(hyperparams))
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    nlp.tokenizer = combined_rule_tokenizer(nlp)
    ner = nlp.get_pipe("ner")
    for label in sorted(set(labels)):
        ner.add_label(label)  # type: ignore[attr-defined]
    return nlp


def _patterns(tokenizer: Any) -> tuple[str | None, ...]:
    def pat(fn: Any) -> str | None:
        return getattr(getattr(fn, "__self__", None), "pattern", None)

    return (pat(tokenizer.prefix_search), pat(tokenizer.suffix_search), pat(tokenizer.infix_finditer))


def uses_scispacy_tokenizer(nlp: Language) -> bool:
    """Whether ``nlp``'s tokenizer has exactly scispaCy's ``combined_rule_tokenizer`` rules.

    >>> import spacy
    >>> uses_scispacy_tokenizer(spacy.blank("en"))
    False
    """
    from scispacy.custom_tokenizer import combined_rule_tokenizer

    reference = combined_rule_tokenizer(nlp)
    return _patterns(nlp.tokenizer) == _patterns(reference) and _patterns(reference)[0] is not None


def doc_from_words(nlp: Language, doc: NerDoc, *, with_entities: bool) -> Doc:
    """A spaCy ``Doc`` over the corpus tokens (single spaces between them), gold entities optional.

    >>> import spacy
    >>> d = doc_from_words(spacy.blank("en"), NerDoc(("Aspirin", "works"), ("B-Chemical", "O")),
    ...                    with_entities=True)
    >>> [(e.text, e.label_) for e in d.ents]
    [('Aspirin', 'Chemical')]
    """
    from spacy.tokens import Doc, Span

    n = len(doc.words)
    out = Doc(nlp.vocab, words=list(doc.words), spaces=[True] * (n - 1) + [False])
    if with_entities:
        out.ents = [Span(out, s, e, label=lab) for s, e, lab in doc.spans]
    return out


def examples_from_docs(nlp: Language, docs: Iterable[NerDoc]) -> list[Example]:
    """Training ``Example``s built on the gold tokenization (prediction side without entities).

    >>> import spacy
    >>> ex = examples_from_docs(spacy.blank("en"), [NerDoc(("a",), ("B-X",))])[0]
    >>> [e.label_ for e in ex.reference.ents], list(ex.predicted.ents)
    (['X'], [])
    """
    from spacy.training import Example

    return [
        Example(doc_from_words(nlp, d, with_entities=False), doc_from_words(nlp, d, with_entities=True))
        for d in docs
    ]
