"""Train a small real model on a BC5CDR slice, save, load by path, evaluate (round trip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmm.reports.ner.corpus import CorpusFormatError
from medmm.reports.ner.evaluate import evaluate_ner
from medmm.reports.ner.pipeline import build_pipeline, uses_scispacy_tokenizer
from medmm.reports.ner.train import META_FILE, train_ner


def test_small_model_round_trip(shared_data: Path, tmp_path: Path) -> None:
    import spacy

    corpus = shared_data / "text" / "bc5cdr"
    out = tmp_path / "model"
    res = train_ner(
        corpus, out, max_docs=300, max_dev_docs=200, max_epochs=6, max_minutes=3, seed=0, progress=False
    )
    assert res.labels == ["Chemical", "Disease"]
    assert res.n_train_docs == 300 and res.n_dev_docs == 200
    assert 1 <= res.best_epoch <= res.epochs <= 6
    assert res.cpu_s > 0 and res.wall_s > 0

    meta = json.loads((out / META_FILE).read_text())
    assert meta["seed"] == 0 and meta["labels"] == ["Chemical", "Disease"]
    assert meta["dev_scores"]["micro"]["f1"] == res.dev_scores["micro"]["f1"]
    assert len(meta["history"]) == res.epochs

    nlp = spacy.load(out)  # by path, a fresh load
    assert nlp.pipe_names == ["tok2vec", "ner"]
    assert uses_scispacy_tokenizer(nlp)
    # scispaCy keeps ASCII-hyphenated words together; spaCy's default English tokenizer splits them
    assert [t.text for t in nlp.make_doc("cocaine-induced seizures")] == ["cocaine-induced", "seizures"]
    assert [t.text for t in spacy.blank("en").make_doc("cocaine-induced")] == ["cocaine", "-", "induced"]

    dev = tmp_path / "dev.tsv"
    lines = (corpus / "devel.tsv").read_text().split("\n\n")[:200]
    dev.write_text("\n\n".join(lines) + "\n")
    scores = evaluate_ner(out, dev)
    assert scores["n_docs"] == 200
    assert scores["micro"]["f1"] > 0.3, scores["micro"]
    # the loaded model scores what the training run measured on the same slice
    assert scores["micro"]["f1"] == pytest.approx(res.dev_scores["micro"]["f1"], abs=1e-4)
    assert set(scores["per_label"]) == {"Chemical", "Disease"}
    assert scores["labels_not_in_model"] == []


def test_same_seed_same_initial_weights() -> None:
    import numpy as np

    def weights(seed: int) -> list:
        nlp = build_pipeline(["X"], seed=seed)
        nlp.initialize()
        return [np.asarray(p).copy() for _, p in _params(nlp.get_pipe("tok2vec").model)]

    a, b, c = weights(1), weights(1), weights(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def _params(model):  # type: ignore[no-untyped-def]
    for node in model.walk():
        for name in node.param_names:
            if node.has_param(name):
                yield f"{node.id}.{name}", node.get_param(name)


def test_missing_split_is_clear(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusFormatError, match="split 'test' not found"):
        train_ner(shared_data / "text" / "ncbi_disease", tmp_path / "m", dev_split="test", progress=False)
