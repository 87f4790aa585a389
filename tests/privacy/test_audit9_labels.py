"""`medmm align --labels`: a table cell that is not 0/1 is refused without quoting it.

A labels table exported from a hospital system often keeps columns that are no labels (the patient's
name, a phone number); every column besides ``patient``/``study`` is read as a label, so the first such
cell stopped align with ``column 'name': 'smith^john' is not 1, 0 or empty`` on the console and in
the calling workflow's log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from privacy_archive import identity_forms

from medmm.align.labels import LabelTableError, read_label_table
from medmm.pseudonym import Pseudonymizer


@pytest.mark.parametrize("cell", ["Smith^John", "555-867-5309"])
def test_non_label_cell_is_not_quoted(tmp_path: Path, cell: str) -> None:
    table = tmp_path / "labels.csv"
    table.write_text(f"patient,name,sepsis\nMRN4471923,{cell},1\n")
    with pytest.raises(LabelTableError) as err:
        read_label_table(table, Pseudonymizer(b"k" * 32))
    message = str(err.value)
    assert "labels.csv#1" in message and "'name'" in message  # still names the file, row and column
    assert not [f for f in identity_forms(cell) if f.lower() in message.lower()]
    assert "MRN4471923" not in message
