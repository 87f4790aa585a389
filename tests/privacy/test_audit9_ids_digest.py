"""``medmm ingest --ids``: the run remembers its ids table by a keyed digest, not a plain SHA-256.

The table holds raw patient ids (MRNs). ``.ingest_state.json`` recorded ``sha256(table bytes)``; for a
small table whose layout is known (the paths are in the manifest), trying every MRN (10^7 for a 7-digit
number) against that digest confirms the patient without the site key. A run made before keeps
resuming (its plain digest is still recognised, then replaced).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from privacy_archive import found_in

from medmm.ingest.image_ids import IdColumns, IdTable
from medmm.ingest.pipeline import ingest_archive
from medmm.pseudonym import Pseudonymizer


def _archive(tmp_path: Path) -> tuple[Path, IdTable, Path]:
    archive = tmp_path / "archive"
    archive.mkdir()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(archive / "cxr.png")
    table = tmp_path / "ids.csv"
    table.write_text("path,patient_id\ncxr.png,MRN4471923\n")
    key = tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    return archive, IdTable.load(table, IdColumns()), key


def test_ids_table_digest_is_keyed(tmp_path: Path) -> None:
    archive, ids, key = _archive(tmp_path)
    run = tmp_path / "run"
    ingest_archive(archive, run, workers=1, processes=False, key_file=key, ids=ids)
    plain = ids.digest  # what anyone holding a guessed table can compute
    assert found_in(run, (plain,), digests=False) == []
    state = json.loads((run / ".ingest_state.json").read_text())
    assert state["ids"] == Pseudonymizer(bytes.fromhex("ab" * 32)).id(plain, "ids")


def test_run_with_the_plain_digest_still_resumes(tmp_path: Path) -> None:
    archive, ids, key = _archive(tmp_path)
    run = tmp_path / "run"
    ingest_archive(archive, run, workers=1, processes=False, key_file=key, ids=ids)
    state_file = run / ".ingest_state.json"
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "ids": ids.digest}))
    again = ingest_archive(archive, run, workers=1, processes=False, key_file=key, ids=ids)
    assert again.n_skipped == 1  # resumed, not started afresh
    assert json.loads(state_file.read_text())["ids"] != ids.digest
