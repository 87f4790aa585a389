"""Evaluate a spaCy NER pipeline on a BIO corpus file: exact-span precision / recall / F1.

The pipeline's components run over ``Doc``s built from the corpus' own (gold) tokens, bypassing its
tokenizer, so a tokenizer that splits text differently from the corpus annotators cannot distort the
numbers: every predicted entity is a span of gold tokens, and a prediction is correct only when its
start, end and label equal a gold entity's.

>>> from medmm.datasets import shared_data_dir
>>> root = shared_data_dir()  # doctest: +SKIP
>>> evaluate_ner("/work/models/bc5cdr", root / "text/bc5cdr/devel.tsv")["micro"]["f1"]  # doctest: +SKIP
0.83
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmm.errors import ConfigError
from medmm.reports.ner.corpus import NerDoc, read_conll
from medmm.reports.ner.metrics import Span, score_spans
from medmm.reports.ner.pipeline import doc_from_words

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = ["evaluate_docs", "evaluate_ner", "load_model", "predict_spans"]


def load_model(model: str | Path | Language) -> Language:
    """Return ``model`` if it is a pipeline, else ``spacy.load`` it (installed package name or folder).

    Raises
    ------
    ConfigError
        When the name is neither an installed package nor a pipeline folder; says how to get one.

    >>> load_model("no_such_model_xyz")  # doctest: +ELLIPSIS, +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ConfigError: ...
    """
    import spacy
    from spacy.language import Language

    if isinstance(model, Language):
        return model
    try:
        return spacy.load(model)
    except OSError as exc:
        raise ConfigError(
            f"cannot load NER model {str(model)!r}: it is neither an installed spaCy package nor a "
            "pipeline folder. Train one with `medmm reports train-ner --corpus DIR --out MODEL_DIR` "
            "or install a scispaCy model (e.g. en_ner_bc5cdr_md) from scispaCy's release URLs"
        ) from exc


def predict_spans(
    nlp: Language,
    docs: list[NerDoc],
    *,
    batch_size: int = 256,
    label_map: Mapping[str, str] | None = None,
) -> list[list[Span]]:
    """Run ``nlp``'s components over the gold tokens of ``docs``; entities as token spans.

    ``label_map`` renames predicted labels (e.g. ``{"CHEMICAL": "Chemical"}`` for scispaCy's
    ``en_ner_bc5cdr_md``); labels not in it are kept.

    >>> import spacy
    >>> nlp = spacy.blank("en"); ruler = nlp.add_pipe("entity_ruler")
    >>> ruler.add_patterns([{"label": "Chemical", "pattern": "aspirin"}])
    >>> predict_spans(nlp, [NerDoc(("take", "aspirin"), ("O", "O"))])
    [[(1, 2, 'Chemical')]]
    """
    gold_tok = (doc_from_words(nlp, d, with_entities=False) for d in docs)
    rename = dict(label_map or {})
    return [
        [(e.start, e.end, rename.get(e.label_, e.label_)) for e in doc.ents]
        for doc in nlp.pipe(gold_tok, batch_size=batch_size)
    ]


def evaluate_docs(
    nlp: Language, docs: list[NerDoc], *, label_map: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Exact-span scores of ``nlp`` on already-read corpus documents (see :func:`score_spans`).

    >>> import spacy
    >>> evaluate_docs(spacy.blank("en"), [NerDoc(("a",), ("B-X",))])["micro"]["recall"]
    0.0
    """
    pred = predict_spans(nlp, docs, label_map=label_map)
    return score_spans([list(d.spans) for d in docs], pred)


def evaluate_ner(
    model: str | Path | Language, corpus_file: Path, *, label_map: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Entity-level exact-span precision, recall and F1 (per label and micro) of a NER model.

    Parameters
    ----------
    model : str, Path or Language
        An installed spaCy/scispaCy package name, a pipeline folder (e.g. one written by
        :func:`medmm.reports.ner.train.train_ner`) or a loaded pipeline.
    corpus_file : Path
        A BIO CoNLL/TSV file (``token<TAB>tag``).
    label_map : mapping, optional
        Renames the model's labels to the corpus' before scoring (``{"CHEMICAL": "Chemical"}``).

    Returns
    -------
    dict
        JSON-serializable: ``micro`` and ``per_label`` (each ``precision, recall, f1, n_gold, n_pred,
        n_correct``), ``n_docs``, ``corpus``, ``model``, ``tokenization`` (always ``"gold"``),
        ``labels_not_in_model`` (gold labels the model cannot predict), ``label_map`` and ``seconds``.

    >>> import spacy, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "dev.tsv"
    >>> _ = p.write_text("Aspirin\\tB-Chemical\\n\\n")
    >>> evaluate_ner(spacy.blank("en"), p)["per_label"]["Chemical"]["n_gold"]
    1
    """
    t0 = time.perf_counter()
    nlp = load_model(model)
    docs = read_conll(Path(corpus_file))
    scores = evaluate_docs(nlp, docs, label_map=label_map)
    rename = dict(label_map or {})
    model_labels: set[str] = set()
    for name in nlp.pipe_names:
        labels = getattr(nlp.get_pipe(name), "labels", ()) or ()
        model_labels |= {rename.get(lab, lab) for lab in labels}
    gold_labels = {lab for d in docs for _, _, lab in d.spans}
    scores.update(
        {
            "corpus": str(corpus_file),
            "model": str(model) if isinstance(model, str | Path) else str(nlp.meta.get("name", "pipeline")),
            "tokenization": "gold",
            "labels_not_in_model": sorted(gold_labels - model_labels),
            "label_map": dict(label_map or {}),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )
    return scores
