"""Two copies of one DICOM instance, one undecodable: `medmm ingest` keeps the copy whose pixels decode.

pydicom ships ``JPEG-lossy.dcm`` (a 12-bit JPEG stream no installed decoder reads) and ``JPGExtended.dcm``
(the same instance, decodable) with one SOP Instance UID. Before the ingest stage passed a decodability
check to series assembly, the first in path order (the undecodable one) was kept and the good copy was
called a duplicate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from pydicom.data import get_testdata_file

from medmm.ingest.pipeline import ingest_archive


def test_ingest_keeps_the_decodable_copy_of_a_repeated_instance(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("JPEG-lossy.dcm", "JPGExtended.dcm"):
        src = get_testdata_file(name)
        assert src is not None
        shutil.copy(src, archive / name)
    run = tmp_path / "run"
    ingest_archive(archive, run, workers=1, processes=False, key_file=tmp_path / "k")
    man = pd.read_parquet(run / "manifest.parquet").set_index("path")
    assert man.loc["JPGExtended.dcm", "status"] == "ingested"
    assert man.loc["JPEG-lossy.dcm", "status"] == "duplicate"
    assert str(man.loc["JPEG-lossy.dcm", "reason"]).endswith("this copy's pixel data cannot be decoded)")
