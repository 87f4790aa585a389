"""A table exported without a header line is refused without printing its first row.

pandas / csv read the first data row as column names, and the "no such column" errors listed them:
``labels.csv: no 'patient' column (columns found: ['MRN4471923', 'Unnamed: 1', '1'])`` and
``ids.csv: the ids table has no column 'path' (its columns: cxr.png, MRN4471923, Smith^John)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from privacy_archive import identity_forms

from medmm.align.labels import LabelTableError, read_label_table
from medmm.errors import ConfigError
from medmm.ingest.image_ids import IdColumns, IdTable
from medmm.pseudonym import Pseudonymizer

_VALUES = ("MRN4471923", "Smith^John")


def _leaks(message: str) -> list[str]:
    return [f for v in (*_VALUES, "cxr_0001.png") for f in identity_forms(v) if f.lower() in message.lower()]


def test_headerless_labels_table(tmp_path: Path) -> None:
    table = tmp_path / "labels.csv"
    table.write_text("MRN4471923,Smith^John,1\nMRN5550001,Doe^Jane,0\n")
    with pytest.raises(LabelTableError) as err:
        read_label_table(table, Pseudonymizer(b"k" * 32))
    assert "no 'patient' column" in str(err.value) and "looks like data" in str(err.value)
    assert _leaks(str(err.value)) == []


def test_headerless_ids_table(tmp_path: Path) -> None:
    table = tmp_path / "ids.csv"
    table.write_text("cxr_0001.png,MRN4471923,Smith^John\n")
    with pytest.raises(ConfigError) as err:
        IdTable.load(table, IdColumns())
    assert "no column 'path'" in str(err.value) and "looks like data" in str(err.value)
    assert _leaks(str(err.value)) == []


def test_a_real_header_is_still_listed(tmp_path: Path) -> None:
    table = tmp_path / "ids.csv"
    table.write_text("Image Index,Patient ID\ncxr_0001.png,MRN4471923\n")
    with pytest.raises(ConfigError, match=r"columns found: 'Image Index', 'Patient ID'"):
        IdTable.load(table, IdColumns())


def test_modality_column_holding_names_is_refused(tmp_path: Path) -> None:
    """``--modality-column`` naming the wrong column copied its cells (a patient's name) verbatim into
    ``manifest.modality``, ``volumes.modality`` and the sidecar."""
    table = tmp_path / "ids.csv"
    table.write_text("path,patient_id,name\ncxr_0001.png,MRN4471923,Smith^John\n")
    with pytest.raises(ConfigError) as err:
        IdTable.load(table, IdColumns(modality="name"))
    assert "row 2: column 'name'" in str(err.value) and _leaks(str(err.value)) == []
    table.write_text("path,patient_id,modality\ncxr_0001.png,MRN4471923,X-ray\n")  # a real one still reads
    assert IdTable.load(table, IdColumns()).lookup("cxr_0001.png").modality == "X-ray"  # type: ignore[union-attr]


@pytest.mark.parametrize("modality", ["PET/CT", "SPECT/CT", "PT/MR"])
def test_combined_modality_is_read(tmp_path: Path, modality: str) -> None:
    """A RIS export's combined modality was refused as a file path (its "/"), stopping the whole run."""
    table = tmp_path / "ids.csv"
    table.write_text(f"path,patient_id,modality\nscan_0001.png,MRN4471923,{modality}\n")
    assert IdTable.load(table, IdColumns()).lookup("scan_0001.png").modality == modality  # type: ignore[union-attr]
