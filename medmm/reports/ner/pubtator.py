"""Raw-text evaluation on PubTator files: the model's own tokenizer, character-offset exact match.

:func:`~medmm.reports.ner.evaluate.evaluate_ner` scores a model on the corpus' gold tokens, which
measures the NER component alone. A report pipeline runs on raw text, where the tokenizer decides which
boundaries exist at all: scispaCy keeps ``Selegiline-induced`` as one token, so the gold chemical
``Selegiline`` cannot be predicted exactly. :func:`evaluate_pubtator` measures that end-to-end number
from the original PubTator abstracts (BC5CDR ``CDR_*.PubTator.txt``, NCBI-disease ``NCBI*_corpus.txt``)
and reports how many gold mentions the tokenizer can reach (``gold_alignable``).

>>> import tempfile, pathlib, spacy
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.PubTator.txt"
>>> _ = p.write_text("1|t|Aspirin-induced asthma.\\n1|a|None.\\n1\\t0\\t7\\tAspirin\\tChemical\\tD1\\n")
>>> read_pubtator(p)[0].entities
((0, 7, 'Chemical'),)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmm.reports.ner.corpus import CorpusFormatError
from medmm.reports.ner.metrics import score_spans

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.training import Example

__all__ = [
    "NCBI_DISEASE_TYPES",
    "PubtatorDoc",
    "evaluate_pubtator",
    "examples_from_pubtator",
    "read_pubtator",
    "score_pubtator_docs",
]

#: NCBI-disease's four mention types, all ``Disease`` in its BIO files.
NCBI_DISEASE_TYPES = dict.fromkeys(
    ["SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention"], "Disease"
)


@dataclass(frozen=True)
class PubtatorDoc:
    """One abstract: ``text`` = title + ``" "`` + abstract (PubTator's offsets), entities as char spans."""

    pmid: str
    text: str
    entities: tuple[tuple[int, int, str], ...]


def read_pubtator(path: Path, *, label_map: Mapping[str, str] | None = None) -> list[PubtatorDoc]:
    """Read a PubTator file (``pmid|t|title``, ``pmid|a|abstract``, ``pmid<TAB>start<TAB>end<TAB>...``).

    Relation lines (``pmid<TAB>CID<TAB>...``) are skipped. An entity whose offsets do not match its
    mention text raises :class:`~medmm.reports.ner.corpus.CorpusFormatError` naming ``file:line``.
    ``label_map`` renames gold types (NCBI-disease: ``SpecificDisease``, ``DiseaseClass``,
    ``Modifier``, ``CompositeMention`` are all ``Disease`` in its BIO files).
    """
    rename = dict(label_map or {})
    path = Path(path)
    if not path.is_file():
        raise CorpusFormatError(str(path), "PubTator file not found", "pass an existing PubTator .txt file")
    texts: dict[str, str] = {}
    ents: dict[str, list[tuple[int, int, str]]] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            head = line.split("|", 2)
            if len(head) == 3 and head[1] in ("t", "a") and "\t" not in head[0]:
                pmid, part, body = head
                texts[pmid] = body if part == "t" else texts.get(pmid, "") + " " + body
                continue
            cols = line.split("\t")
            if len(cols) >= 5 and cols[1].isdigit() and cols[2].isdigit():
                pmid, start, end, mention, label = cols[0], int(cols[1]), int(cols[2]), cols[3], cols[4]
                if texts.get(pmid, "")[start:end].strip() != mention.strip():  # NCBI pads some mentions
                    raise CorpusFormatError(
                        f"{path}:{lineno}",
                        f"offsets {start}-{end} do not match mention {mention!r}",
                        "check that the title/abstract lines precede the entity lines unchanged",
                    )
                ents.setdefault(pmid, []).append((start, end, rename.get(label, label)))
            elif len(cols) >= 2 and not cols[1].isdigit():
                continue  # relation line (CID) or other annotation without offsets
            else:
                raise CorpusFormatError(
                    f"{path}:{lineno}",
                    f"not a PubTator line: {line[:60]!r}",
                    "use 'pmid|t|title', 'pmid|a|abstract', 'pmid<TAB>start<TAB>end<TAB>text<TAB>type' lines",
                )
    return [PubtatorDoc(pmid, text, tuple(sorted(set(ents.get(pmid, []))))) for pmid, text in texts.items()]


def examples_from_pubtator(nlp: Language, docs: list[PubtatorDoc]) -> list[Example]:
    """Training examples on raw abstracts tokenized by ``nlp``'s own tokenizer (as scispaCy trains).

    Gold mentions whose boundaries fall inside a token become *missing* tags (spaCy's ``-``), so the
    model is neither taught to predict them nor punished for them.

    >>> import spacy
    >>> ex = examples_from_pubtator(spacy.blank("en"), [PubtatorDoc("1", "Aspirin works", ((0, 7, "C"),))])
    >>> [(e.text, e.label_) for e in ex[0].reference.ents]
    [('Aspirin', 'C')]
    """
    import warnings

    from spacy.training import Example

    out = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*\[W030\]")  # misaligned entities -> missing
        for d in docs:
            out.append(Example.from_dict(nlp.make_doc(d.text), {"entities": list(d.entities)}))
    return out


def score_pubtator_docs(
    nlp: Language, docs: list[PubtatorDoc], *, label_map: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Exact character-span scores of ``nlp`` (own tokenizer) on read abstracts, plus ``gold_alignable``.

    >>> import spacy
    >>> score_pubtator_docs(spacy.blank("en"), [PubtatorDoc("1", "a b", ((0, 1, "X"),))])["gold_alignable"]
    1.0
    """
    rename = dict(label_map or {})
    pred: list[list[tuple[int, int, str]]] = []
    n_gold = n_align = 0
    for doc, parsed in zip(docs, nlp.pipe(d.text for d in docs), strict=True):
        pred.append([(e.start_char, e.end_char, rename.get(e.label_, e.label_)) for e in parsed.ents])
        for start, end, _ in doc.entities:
            n_gold += 1
            n_align += parsed.char_span(start, end) is not None
    scores = score_spans([list(d.entities) for d in docs], pred)
    scores["gold_alignable"] = round(n_align / n_gold, 4) if n_gold else 0.0
    return scores


def evaluate_pubtator(
    model: str | Path | Language,
    pubtator_file: Path,
    *,
    label_map: Mapping[str, str] | None = None,
    gold_label_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """End-to-end exact-match scores on raw abstracts (model's tokenizer, character offsets).

    Returns the same ``micro``/``per_label`` structure as
    :func:`~medmm.reports.ner.evaluate.evaluate_ner`, plus ``gold_alignable``: the share of gold
    mentions whose boundaries fall on the model's token boundaries (the best recall reachable).
    ``label_map`` renames predicted labels, ``gold_label_map`` gold ones (see :func:`read_pubtator`).

    >>> evaluate_pubtator("/work/models/bc5cdr", Path("CDR_DevelopmentSet.PubTator.txt"))  # doctest: +SKIP
    """
    from medmm.reports.ner.evaluate import load_model

    t0 = time.perf_counter()
    nlp = load_model(model)
    docs = read_pubtator(pubtator_file, label_map=gold_label_map)
    rename = dict(label_map or {})
    scores = score_pubtator_docs(nlp, docs, label_map=rename)
    scores.update(
        {
            "corpus": str(pubtator_file),
            "model": str(model) if isinstance(model, str | Path) else str(nlp.meta.get("name", "pipeline")),
            "tokenization": "model",
            "label_map": rename,
            "gold_label_map": dict(gold_label_map or {}),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )
    return scores
