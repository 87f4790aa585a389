"""Bad inputs: encodings, HTML/RTF, redactions, huge reports, missing columns, duplicates, empty text."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medmm.reports.io.inputs import MissingColumnError, clean_text, decode_bytes, read_reports


def test_non_utf8_is_decoded_and_recorded(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_bytes("uid,findings\n1,Small effusion noted near the café.\n".encode("cp1252"))
    batch = read_reports(p)
    (r,) = batch.reports
    assert "café" in r.text and any(n.startswith("decoded-as-") for n in r.notes)


def test_undecodable_bytes_use_replacement() -> None:
    text, notes = decode_bytes(b"No effusion \x81\x8d\x90")
    assert notes == ["decoded-with-replacement"] and "\ufffd" in text


def test_html_and_rtf_are_stripped() -> None:
    assert clean_text("<div>No <b>effusion</b>.<br/>Clear.</div>") == (
        "No effusion .\nClear.",
        ["html-stripped"],
    )
    text, notes = clean_text(r"{\rtf1\ansi\deff0 {\fonttbl {\f0 Arial;}}\f0 No pneumothorax.\par}")
    assert "No pneumothorax." in text and "\\" not in text and notes == ["rtf-stripped"]


def test_huge_report_is_capped_with_a_reason(tmp_path: Path) -> None:
    p = tmp_path / "big"
    p.mkdir()
    (p / "a.txt").write_text("Mild cardiomegaly. " * 300_000)  # ~5.7 MB
    (r,) = read_reports(p).reports
    assert len(r.text) <= 100_000 and r.text.endswith(".")
    assert any(n.startswith("truncated-from-") for n in r.notes)


def test_missing_columns_list_what_was_found(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("key,body_text\n1,No effusion.\n")
    with pytest.raises(MissingColumnError, match=r"columns found: 'key', 'body_text'"):
        read_reports(p)
    with pytest.raises(MissingColumnError, match="no text column"):
        read_reports(p, id_column="key", text_columns=["findings"])
    assert (
        read_reports(p, id_column="key", text_columns=["body_text"]).reports[0].text.endswith("No effusion.")
    )


def test_duplicates_empty_and_missing_ids_are_rows_not_drops(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "No effusion."}),
        json.dumps({"id": "a", "text": "Again."}),
        json.dumps({"id": "b", "text": "   "}),
        json.dumps({"id": "", "text": "Orphan."}),
        "{not json",
        json.dumps({"id": "c", "text": "Clear."}),
    ]
    p.write_text("\n".join(lines) + "\n")
    batch = read_reports(p)
    assert [r.report_id for r in batch.reports] == ["a", "c"]
    kinds = sorted((r.status.value, r.reason.split(":")[0]) for r in batch.rejected)
    assert kinds == [
        ("duplicate", "same report_id as r.jsonl#1 (kept the first)"),
        ("quarantined", "EmptyReportError"),
        ("quarantined", "InputError"),
        ("quarantined", "MissingIdError"),
    ]
    assert len(batch.reports) + len(batch.rejected) == len(lines)


def test_columns_become_sections(tmp_path: Path) -> None:
    p = tmp_path / "r.parquet"
    pd.DataFrame(
        {"uid": ["1"], "findings": ["No effusion."], "impression": ["Normal."], "notes": ["x"]}
    ).to_parquet(p)
    (r,) = read_reports(p).reports
    assert r.text == "FINDINGS: No effusion.\n\nIMPRESSION: Normal."
    assert [s[0] for s in r.sections or []] == ["FINDINGS", "IMPRESSION"]


def test_patient_ids_are_pseudonymized(tmp_path: Path, pseudonymizer) -> None:
    p = tmp_path / "r.csv"
    p.write_text("uid,mrn,text\n1,MRN-77,No effusion.\n")
    (r,) = read_reports(p, patient_column="mrn", pseudonymizer=pseudonymizer).reports
    assert r.patient_id == pseudonymizer.id("MRN-77", "patient") and "77" not in (r.patient_id or "")[:4]


def test_redaction_tokens_never_become_entities() -> None:
    from medmm.reports.extract import doc_rows
    from medmm.reports.nlp import PipelineSpec, get_pipeline

    spec = PipelineSpec()
    rows, _ = doc_rows(
        get_pipeline(spec)("XXXX XXXX. Normal chest x-XXXX. Heart size XXXX mildly enlarged."), "r", spec
    )
    assert all(not r.text.startswith("XXXX") and not r.text.endswith("XXXX") for r in rows)
    assert [r.finding for r in rows if r.label == "FINDING"] == ["cardiomegaly"]


def test_txt_folder_reports_and_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("FINDINGS: No effusion.")
    (tmp_path / "sub" / "b.txt").write_bytes(b"")
    (tmp_path / "c.txt").write_text("x")
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "c.txt":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    batch = read_reports(tmp_path)
    assert [(r.report_id, r.path, r.format) for r in batch.reports] == [("a", "a.txt", "txt")]
    reasons = {r.path: r.reason for r in batch.rejected}
    assert reasons["sub/b.txt"].startswith("EmptyReportError")
    assert reasons["c.txt"].startswith("InputError: c.txt: cannot be read (Permission denied)")
