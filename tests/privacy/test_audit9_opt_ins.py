"""The identity opt-ins of ``medmm reports parse`` do exactly what docs/privacy.md says, and nothing more.

``--keep-report-ids`` keeps the raw report id in ``report_id`` only (patient and accession stay
pseudonyms); ``--keep-text`` adds ``report_texts.parquet`` with the text as given. Every other table is
the same as without them, row for row, once raw report ids are mapped to their pseudonyms.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from privacy_archive import HEADER_IDENTITY, build_archive, found_in

from medmm.pseudonym import Pseudonymizer
from medmm.reports.pipeline import parse_reports

_TABLES = ("manifest_reports", "entities", "report_labels")


def _parse(reports: Path, run: Path, key: Path, keep: bool) -> None:
    parse_reports(
        reports,
        run,
        id_column="accession",
        text_columns=["indication", "findings", "impression"],
        patient_column="mrn",
        accession_column="accession",
        date_column="date",
        workers=0,
        key_file=key,
        keep_text=keep,
        keep_report_ids=keep,
    )


def test_keep_text_and_report_ids_change_only_what_they_say(tmp_path: Path) -> None:
    reports = build_archive(tmp_path) / "reports.csv"
    key = tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    plain, kept = tmp_path / "plain", tmp_path / "kept"
    _parse(reports, plain, key, keep=False)
    _parse(reports, kept, key, keep=True)

    assert found_in(plain, HEADER_IDENTITY) == []
    assert not (plain / "report_texts.parquet").exists()
    texts = pd.read_parquet(kept / "report_texts.parquet")
    assert sorted(texts["report_id"]) == ["ACC7730291", "ACC7730292"]
    assert "John Smith (DOB 03/17/1961, MRN4471923)" in texts["text"].iloc[0]  # as given, not de-identified

    pseudonym = Pseudonymizer(bytes.fromhex("ab" * 32)).id_function("report")
    for name in _TABLES:
        a = pd.read_parquet(plain / f"{name}.parquet").drop(columns=["mtime_ns"], errors="ignore")
        b = pd.read_parquet(kept / f"{name}.parquet").drop(columns=["mtime_ns"], errors="ignore")
        assert set(b["report_id"]) <= {"ACC7730291", "ACC7730292"}  # raw ids, as asked
        b["report_id"] = b["report_id"].map(pseudonym)
        a, b = (f.sort_values("report_id", kind="stable").reset_index(drop=True) for f in (a, b))
        pd.testing.assert_frame_equal(a, b, obj=name)  # rows are ordered by report id: sorted again
    manifest = pd.read_parquet(kept / "manifest_reports.parquet")
    assert manifest["patient_id"].str.startswith("pat-").all()
    assert manifest["accession_id"].str.startswith("rep-").all()
    # beyond report_texts and the raw report ids, the kept run holds no identity either
    other = [h for h in found_in(kept, HEADER_IDENTITY) if not h.startswith("report_texts.parquet")]
    assert [h for h in other if not h.endswith(": ACC7730291")] == []
