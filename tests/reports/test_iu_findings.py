"""IU chest X-ray reports: findings vs the `Problems` labels, with floors, against the regex baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmm.reports.evaluate_findings import EVAL_FINDINGS, compare, format_table


@pytest.fixture(scope="module")
def iu_result(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from medmm.reports.pipeline import parse_reports

    csv = shared_data / "text" / "iu_xray" / "indiana_reports_dev.csv"
    run = tmp_path_factory.mktemp("iu") / "run"
    key = run.parent / "site.key"
    key.write_text("ab" * 32 + "\n")
    parse_reports(
        csv,
        run,
        id_column="uid",
        text_columns=["indication", "comparison", "findings", "impression"],
        workers=0,
        batch_size=500,
        key_file=key,
    )
    # report ids are pseudonyms: compare matches them to the CSV's uids with the run's key
    return compare(csv, run, key_file=key)


def test_iu_findings_floors(iu_result: dict) -> None:
    print(format_table(iu_result["all"]))
    ours, base = iu_result["all"]["medmm"], iu_result["all"]["baseline"]
    assert ours["n_reports"] > 2500
    assert ours["macro_f1"] >= 0.90
    assert ours["macro_f1"] >= base["macro_f1"] + 0.05
    for f in EVAL_FINDINGS:
        assert ours[f]["f1"] >= 0.84, (f, ours[f])
        assert ours[f]["support"] >= 50


def test_iu_heldout_half(iu_result: dict) -> None:
    """The lexicon was tuned on even uids only; odd uids are held out."""
    held = iu_result["heldout"]["medmm"]
    assert held["macro_f1"] >= 0.90
    assert held["macro_f1"] > iu_result["heldout"]["baseline"]["macro_f1"]
    assert min(held[f]["f1"] for f in EVAL_FINDINGS) >= 0.80
