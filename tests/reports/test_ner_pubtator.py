"""PubTator reader on the real BC5CDR / NCBI-disease abstracts, and raw-text (model-tokenizer) scoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmm.reports.ner.corpus import CorpusFormatError
from medmm.reports.ner.pubtator import evaluate_pubtator, read_pubtator

NCBI_TYPES = dict.fromkeys(["SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention"], "Disease")


def test_real_pubtator_counts(shared_data: Path) -> None:
    bc5 = read_pubtator(shared_data / "text" / "bc5cdr" / "CDR_DevelopmentSet.PubTator.txt")
    assert len(bc5) == 500
    assert sum(len(d.entities) for d in bc5) == 9591  # unique (start, end, type) mentions
    first = bc5[0]
    assert first.text.startswith("Tricuspid valve regurgitation and lithium carbonate")
    assert (34, 51, "Chemical") in first.entities
    ncbi = read_pubtator(
        shared_data / "text" / "ncbi_disease" / "NCBIdevelopset_corpus.txt", label_map=NCBI_TYPES
    )
    assert len(ncbi) == 100
    assert sum(len(d.entities) for d in ncbi) == 787  # the same mentions as devel.tsv's B- tags
    assert {lab for d in ncbi for _, _, lab in d.entities} == {"Disease"}


def test_offset_mismatch_is_clear(tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_text("1|t|Aspirin works.\n1|a|x\n1\t0\t6\tAspirin\tChemical\tD1\n")
    with pytest.raises(CorpusFormatError, match=r"bad.txt:3: offsets 0-6 do not match"):
        read_pubtator(p)


def test_raw_text_scoring_counts_unreachable_boundaries(tmp_path: Path) -> None:
    import spacy
    from scispacy.custom_tokenizer import combined_rule_tokenizer

    nlp = spacy.blank("en")
    nlp.tokenizer = combined_rule_tokenizer(nlp)
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "Chemical", "pattern": [{"LOWER": "aspirin"}]}])  # type: ignore[attr-defined]
    p = tmp_path / "x.PubTator.txt"
    text = "Aspirin-induced asthma. Aspirin helps."
    p.write_text(f"1|t|{text}\n1|a|\n1\t0\t7\tAspirin\tChemical\tD1\n1\t24\t31\tAspirin\tChemical\tD1\n")
    res = evaluate_pubtator(nlp, p)
    # scispaCy keeps "Aspirin-induced" as one token: the first mention cannot be found exactly
    assert res["gold_alignable"] == 0.5
    assert res["micro"]["n_correct"] == 1 and res["micro"]["n_gold"] == 2
    assert res["tokenization"] == "model"


def test_misaligned_mentions_become_missing_tags() -> None:
    import spacy
    from scispacy.custom_tokenizer import combined_rule_tokenizer

    from medmm.reports.ner.pubtator import PubtatorDoc, examples_from_pubtator

    nlp = spacy.blank("en")
    nlp.tokenizer = combined_rule_tokenizer(nlp)
    doc = PubtatorDoc("1", "Aspirin-induced asthma.", ((0, 7, "Chemical"), (16, 22, "Disease")))
    ref = examples_from_pubtator(nlp, [doc])[0].reference
    assert [t.text for t in ref] == ["Aspirin-induced", "asthma", "."]
    assert [(e.text, e.label_) for e in ref.ents] == [("asthma", "Disease")]
    assert ref[0].ent_iob_ == ""  # missing: neither taught as O nor as an entity
    assert ref[2].ent_iob_ == "O"


def test_train_on_raw_abstracts(shared_data: Path, tmp_path: Path) -> None:
    import spacy

    from medmm.reports.ner.pipeline import uses_scispacy_tokenizer
    from medmm.reports.ner.train import train_ner

    corpus = shared_data / "text" / "ncbi_disease"
    res = train_ner(
        corpus,
        tmp_path / "m",
        train_text=corpus / "NCBItrainset_corpus.txt",
        dev_text=corpus / "NCBIdevelopset_corpus.txt",
        train_text_label_map=NCBI_TYPES,
        max_docs=30,
        max_dev_docs=50,
        max_epochs=1,
        progress=False,
    )
    assert res.labels == ["Disease"] and res.n_train_docs == 30
    assert res.settings["train_text"].endswith("NCBItrainset_corpus.txt")
    assert res.n_dev_docs == 50  # abstracts, scored on raw text
    assert "gold_alignable" in res.dev_scores
    assert uses_scispacy_tokenizer(spacy.load(tmp_path / "m"))
