"""The pieces of `medmm share`: names and their pseudonyms, NIfTI header blanking, JSON sanitizing,
column policies and the self-check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.share.check import find_source_names
from medmm.share.jsonfiles import sanitize_json, sanitize_run_json
from medmm.share.names import SourceNames, path_parts
from medmm.share.nifti import copy_nifti_blanked, nifti_text_fields
from medmm.share.policy import TABLES, table_policy
from medmm.share.tables import share_frame

P = Pseudonymizer(b"s" * 32)
PATHS = ["DOE^JOHN/2024-01-05/DOE_JOHN_19700101.dcm", "DOE^JOHN/2024-01-05/MRN98765432.dcm", "mitdb/100.hea"]
RECORDS = ["mitdb/100", "p00/p000020/p000020-2183-04-28-17-47"]


@pytest.fixture()
def names() -> SourceNames:
    return SourceNames.build(PATHS, RECORDS, P)


def test_source_names_hold_every_part_of_paths_and_records(names: SourceNames) -> None:
    for part in (
        "DOE^JOHN",
        "2024-01-05",
        "DOE^JOHN/2024-01-05",
        "DOE_JOHN_19700101",
        "MRN98765432.dcm",
        "100",
    ):
        assert part in names.sensitive, part
    assert "p000020-2183-04-28-17-47" in names.sensitive and "p000020" in names.sensitive
    assert path_parts("a/b.tar.gz")[2] == ["b", "b.tar"]


def test_scrub_replaces_paths_folders_and_names_consistently(names: SourceNames) -> None:
    reasons = [
        "MissingSliceError: DOE^JOHN/2024-01-05/ (2 files of one series): missing slice. Fix: re-send",
        "same SOP Instance UID as DOE^JOHN/2024-01-05/DOE_JOHN_19700101.dcm (kept that one)",
        "companion of MRN98765432.dcm",
        "record p00/p000020/p000020-2183-04-28-17-47 has 100 samples",
    ]
    out = [names.scrub(r) for r in reasons]
    assert not any(s in text for text in out for s in ("DOE", "JOHN", "2024-01-05", "MRN", "2183", "p000020"))
    assert names.path(PATHS[0]) in out[1]  # a full path gets the path's own pseudonym (links rows)
    assert out[3].endswith("has 100 samples")  # a short number is never replaced inside text
    assert names.scrub("nothing to see") == "nothing to see"


def test_nifti_text_fields_and_extensions_are_blanked(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    for klass, name in ((nib.Nifti1Image, "v1.nii.gz"), (nib.Nifti2Image, "v2.nii")):
        img = klass(data, np.diag([2.0, 2.0, 3.0, 1.0]))
        img.header["descrip"] = b"DOE^JOHN 19700101"
        img.header["aux_file"] = b"MRN98765432"
        img.header["intent_name"] = b"JOHN"
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"patient DOE^JOHN"))
        nib.save(img, tmp_path / name)
        assert b"DOE^JOHN" in nifti_text_fields(tmp_path / name)["extensions"]
        blanked = copy_nifti_blanked(tmp_path / name, tmp_path / f"copy_{name}")
        assert set(blanked) == {"descrip", "aux_file", "intent_name", "extensions"}
        copy: Any = nib.load(tmp_path / f"copy_{name}")
        assert copy.header["descrip"].item() == b"" and copy.header["aux_file"].item() == b""
        assert len(copy.header.extensions) == 0
        assert np.array_equal(np.asarray(copy.dataobj), data) and np.allclose(copy.affine, img.affine)
        fields = nifti_text_fields(tmp_path / f"copy_{name}")
        assert not any(v.strip(b"\x00") for v in fields.values())


def test_json_sanitizer_drops_paths_and_pseudonymizes_names(names: SourceNames) -> None:
    dropped: list[str] = []
    run = {
        "key_check": "0123456789abcdef",
        "versions": {"numpy": "1.26", "platform": "Linux-host"},
        "stages": {
            "signals": {
                "options": {"input": "/data/DOE^JOHN", "rate": 250.0, "key_file": "C:\\keys\\site.key"},
                "skipped": ["p00/p000020/p000020-2183-04-28-17-47"],
                "per_record": {"mitdb/100": 3},
                "note": "record p00/p000020/p000020-2183-04-28-17-47 was short",
            }
        },
    }
    out = sanitize_run_json(run, names, dropped)
    assert set(out) == {"stages", "versions"} and "platform" not in out["versions"]
    signals = out["stages"]["signals"]
    assert signals["options"] == {"rate": 250.0}
    assert signals["skipped"] == [names.record(RECORDS[1])] and signals["per_record"] == {
        names.record("mitdb/100"): 3
    }
    assert "p000020" not in json.dumps(out) and "DOE" not in json.dumps(out)
    assert "stages.signals.options.input" in dropped and "key_check" in dropped
    assert sanitize_json({"a": ["x/y", "keep"]}, names, []) == {"a": ["keep"]}


def test_column_policies_pseudonymize_and_leave_out_unknown_columns(names: SourceNames) -> None:
    frame = pd.DataFrame(
        {
            "record": ["mitdb/100", "mitdb/100", None],
            "patient_id": ["pat-1"] * 3,
            "channel": ["MLII"] * 3,
            "window": [0, 1, 0],
            "path": ["windows/mitdb/100/MLII.npy", "windows/mitdb/100/MLII.npy", "elsewhere/x.npy"],
            "row": [0, 1, 0],
            "anchor": ["", "alarm in mitdb/100.hea", ""],
            "surname": ["DOE", "DOE", "DOE"],
        }
    )
    shared = share_frame(frame, TABLES["windows.parquet"], names)
    assert shared.left_out == ["surname"] and "surname" not in shared.frame.columns
    rec = names.record("mitdb/100")
    assert shared.frame["record"].tolist()[:2] == [rec, rec] and pd.isna(shared.frame["record"][2])
    assert shared.frame["path"].tolist()[:2] == [f"windows/{rec}/MLII.npy"] * 2
    assert pd.isna(shared.frame["path"][2])  # not medmm's window layout: never copied as is
    assert "100.hea" not in shared.frame["anchor"][1]
    assert shared.columns["record"] == "record" and shared.columns["window"] == "keep"
    assert table_policy("models/any/splits.parquet") is TABLES["models/*/splits.parquet"]
    assert table_policy("DOE.parquet") is None


def test_self_check_finds_names_in_cells_headers_and_file_names(tmp_path: Path) -> None:
    sensitive = SourceNames.build(PATHS, RECORDS, P).sensitive
    share = tmp_path / "share"
    share.mkdir()
    pd.DataFrame({"record": ["sig-1", "100"], "n": [100, 100], "note": ["gap 100 mm", "ok"]}).to_parquet(
        share / "beats.parquet"
    )
    pd.DataFrame({"reason": ["EmptyFileError: MRN98765432.dcm: empty"], "format": ["dicom"]}).to_parquet(
        share / "manifest.parquet"
    )
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    img.header["descrip"] = b"DOE_JOHN_19700101"
    nib.save(img, share / "vol-1.nii.gz")
    (share / "windows" / "p000020").mkdir(parents=True)
    np.save(share / "windows" / "p000020" / "II.npy", np.zeros(3))
    (share / "notes.json").write_text(json.dumps({"ok": ["fine", 100], "bad": "from 2024-01-05"}))
    findings = find_source_names(share, sensitive)
    assert findings == [
        "beats.parquet: column record",  # "100" as a whole cell; never inside "gap 100 mm" or a number
        "manifest.parquet: column reason",
        "notes.json: bad",
        "vol-1.nii.gz: header descrip",
        "windows/p000020/II.npy: file name",
    ]
    assert not any(s in f for f in findings for s in ("DOE", "MRN", "2024-01-05"))  # places, never names
    assert find_source_names(share, sensitive, ["manifest.parquet:reason"]) == [
        f for f in findings if "manifest" not in f
    ]


def test_every_column_of_every_shared_table_schema_has_a_policy() -> None:
    """A stage that adds a column to a shared table gets this failure, not a silent leak or loss: the
    share leaves an unknown column out, and this asks for a decision (add it to medmm/share/policy.py:
    keep if it is a number, flag, keyed pseudonym or shifted time; record/path/text/drop otherwise)."""
    from medmm.schemas import collect_schemas

    not_tables = {"manifest_row", "anomaly_model", "workflow", "report_texts"}
    missing = {}
    for name, model in collect_schemas().items():
        if name in not_tables:
            continue
        policy = table_policy(f"{name}.parquet") or table_policy(f"models/fusion/{name}.parquet")
        assert policy is not None, f"{name}: a table medmm writes that medmm share does not know"
        if unknown := sorted(set(model.model_fields) - set(policy)):
            missing[name] = unknown
    assert missing == {}, f"columns without a share policy (medmm/share/policy.py): {missing}"
