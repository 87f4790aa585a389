"""nibabel header-fix messages (naming no file) stay out of a run's output; the volume is still written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medmm.ingest.pipeline import ingest_archive
from medmm.tables import read_table


def test_no_stray_nibabel_lines(shared_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    for ext in ("hdr", "img"):  # its pixdim[1] is negative: nibabel prints "pixdim[1,2,3] should be positive"
        shutil.copy(shared_data / f"imaging/oro_nifti_analyze/avg152T1.{ext}", root / f"atlas.{ext}")
    result = ingest_archive(root, tmp_path / "run", workers=1, processes=False, key_file=tmp_path / "k")
    captured = capfd.readouterr()
    assert "pixdim" not in captured.err + captured.out
    assert result.n_volumes == 1
    volumes = read_table(tmp_path / "run" / "volumes.parquet")
    assert list(volumes["shape"].iloc[0]) == [91, 109, 91]
