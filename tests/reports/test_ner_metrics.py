"""Entity-level exact-span scoring on hand-made cases, and evaluate_ner on the gold tokenization."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmm.errors import ConfigError
from medmm.reports.ner.corpus import NerDoc
from medmm.reports.ner.evaluate import evaluate_docs, evaluate_ner, load_model
from medmm.reports.ner.metrics import prf, score_spans


def test_exact_match_is_perfect() -> None:
    gold = [[(0, 1, "Chemical"), (3, 5, "Disease")], [(2, 3, "Disease")]]
    s = score_spans(gold, gold)
    assert s["micro"] == prf(3, 3, 3)
    assert s["micro"]["f1"] == 1.0
    assert s["n_docs"] == 2


def test_partial_overlap_is_both_fp_and_fn() -> None:
    gold = [[(3, 5, "Disease")]]
    for pred in ([(3, 4, "Disease")], [(2, 5, "Disease")], [(3, 5, "Chemical")]):
        s = score_spans(gold, [pred])
        assert s["micro"]["n_correct"] == 0
        assert s["micro"]["precision"] == 0.0 and s["micro"]["recall"] == 0.0


def test_per_label_counts() -> None:
    gold = [[(0, 1, "Chemical"), (2, 4, "Disease"), (5, 6, "Disease")], [(0, 2, "Chemical")]]
    pred = [[(0, 1, "Chemical"), (2, 4, "Disease"), (7, 8, "Disease")], [(0, 1, "Chemical")]]
    s = score_spans(gold, pred)
    chem, dis = s["per_label"]["Chemical"], s["per_label"]["Disease"]
    assert (chem["n_gold"], chem["n_pred"], chem["n_correct"]) == (2, 2, 1)
    assert (dis["n_gold"], dis["n_pred"], dis["n_correct"]) == (2, 2, 1)
    assert chem["precision"] == 0.5 and dis["recall"] == 0.5
    assert s["micro"]["precision"] == 0.5 and s["micro"]["f1"] == 0.5
    json.dumps(s)  # JSON-serializable


def test_only_gold_or_only_pred_labels() -> None:
    s = score_spans([[(0, 1, "A")]], [[(1, 2, "B")]])
    assert s["per_label"]["A"] == prf(0, 1, 0)
    assert s["per_label"]["B"] == prf(0, 0, 1)
    assert prf(0, 0, 0)["f1"] == 0.0


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="documents"):
        score_spans([[]], [])


def test_evaluate_uses_gold_tokens(tmp_path: Path) -> None:
    """A rule-based pipeline scored through evaluate_ner: spans are gold-token offsets."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(  # type: ignore[attr-defined]
        [
            {"label": "Chemical", "pattern": [{"LOWER": "aspirin"}]},
            {"label": "Disease", "pattern": [{"LOWER": "asthma"}]},
        ]
    )
    p = tmp_path / "dev.tsv"
    # "drug-induced" is three gold tokens; the gold entity "acute asthma" is only partly found
    p.write_text(
        "aspirin\tB-Chemical\n-\tO\ninduced\tO\nacute\tB-Disease\nasthma\tI-Disease\n\nasthma\tB-Disease\n\n"
    )
    res = evaluate_ner(nlp, p)
    assert res["tokenization"] == "gold"
    assert res["per_label"]["Chemical"]["f1"] == 1.0
    assert res["per_label"]["Disease"] == prf(1, 2, 2)
    assert res["micro"]["n_correct"] == 2
    json.dumps(res)
    assert evaluate_docs(nlp, [NerDoc(("ASTHMA",), ("O",))])["micro"]["n_pred"] == 1


def test_unknown_model_name_is_config_error() -> None:
    with pytest.raises(ConfigError, match="train-ner"):
        load_model("en_no_such_model_medmm")


def test_label_map_renames_model_labels(tmp_path: Path) -> None:
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "CHEMICAL", "pattern": "aspirin"}])  # type: ignore[attr-defined]
    p = tmp_path / "dev.tsv"
    p.write_text("aspirin\tB-Chemical\n\n")
    plain = evaluate_ner(nlp, p)
    assert plain["micro"]["f1"] == 0.0 and plain["labels_not_in_model"] == ["Chemical"]
    mapped = evaluate_ner(nlp, p, label_map={"CHEMICAL": "Chemical"})
    assert mapped["micro"]["f1"] == 1.0 and mapped["labels_not_in_model"] == []
