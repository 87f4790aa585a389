"""`medmm reports train-ner` / `evaluate-ner` round trip through the CLI on a slice of BC5CDR."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medmm.cli import app


def _head_sentences(src: Path, dest: Path, n: int) -> None:
    out, count = [], 0
    for line in src.read_text(encoding="utf-8").splitlines():
        out.append(line)
        if not line.strip():
            count += 1
            if count >= n:
                break
    dest.write_text("\n".join(out) + "\n", encoding="utf-8")


def test_train_then_evaluate_via_cli(shared_data: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _head_sentences(shared_data / "text" / "bc5cdr" / "train.tsv", corpus / "train.tsv", 150)
    _head_sentences(shared_data / "text" / "bc5cdr" / "devel.tsv", corpus / "devel.tsv", 60)
    runner = CliRunner()
    model = tmp_path / "model"
    trained = runner.invoke(
        app,
        [
            "reports",
            "train-ner",
            "--corpus",
            str(corpus),
            "--out",
            str(model),
            "--max-minutes",
            "0.5",
            "--budget-clock",
            "cpu",
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert (model / "meta.json").exists() and (model / "medmm_ner.json").exists()
    evaluated = runner.invoke(
        app, ["reports", "evaluate-ner", "--model", str(model), "--corpus", str(corpus / "devel.tsv")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    scores = json.loads(evaluated.output[evaluated.output.index("{") :])
    assert set(scores["per_label"]) == {"Chemical", "Disease"}
    assert 0.0 <= scores["micro"]["f1"] <= 1.0 and scores["micro"]["n_gold"] > 0
    bad = runner.invoke(
        app, ["reports", "train-ner", "--corpus", str(corpus), "--out", str(model), "--budget-clock", "x"]
    )
    assert bad.exit_code == 2
