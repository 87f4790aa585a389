"""Session 8 audit: a re-run after the stage's rules changed (an upgraded medmm, an edited lexicon)
parses every report again. The resume key held the pipeline's name only, so a run directory parsed by
older rules kept their results for every unchanged report, silently."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest


def test_changed_rules_parse_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medmm.reports import nlp, pipeline

    csv = tmp_path / "r.csv"
    pd.DataFrame({"id": ["a", "b"], "report": ["Left effusion ruled out.", "No pneumothorax."]}).to_csv(
        csv, index=False
    )
    run = tmp_path / "run"
    first = pipeline.parse_reports(csv, run, workers=0, keep_report_ids=True)
    assert first.counts["parsed_now"] == 2
    again = pipeline.parse_reports(csv, run, workers=0, keep_report_ids=True)
    assert again.counts["resumed"] == 2  # same rules: nothing parsed again
    stage = json.loads((run / "run.json").read_text())["stages"]["reports"]
    assert f"rules {nlp.rules_fingerprint()}" in stage["pipeline"]

    monkeypatch.setattr(pipeline, "rules_fingerprint", lambda: "000000000000")  # other rules
    later = pipeline.parse_reports(csv, run, workers=0, keep_report_ids=True)
    assert later.counts["parsed_now"] == 2 and later.counts["resumed"] == 0


def test_fingerprint_follows_the_lexicon_and_the_code(tmp_path: Path) -> None:
    import shutil

    from medmm.reports import nlp

    root = tmp_path / "reports"
    shutil.copytree(Path(nlp.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    base = nlp.fingerprint_of(root)
    assert base == nlp.rules_fingerprint()
    triggers = root / "data" / "assertion.yaml"
    triggers.write_text(triggers.read_text().replace("ruled out, ", "", 1))
    edited = nlp.fingerprint_of(root)
    assert edited != base
    (root / "negation.py").write_text((root / "negation.py").read_text() + "\n# changed\n")
    assert nlp.fingerprint_of(root) not in {base, edited}
