"""The Python example at the top of docs/imaging.md runs as written on an archive with a bad file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nibabel as nib
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "imaging.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/imaging.md has no python example"
    return str(blocks[0])


def test_docs_example_runs(
    shared_data: Path,
    tmp_path: Path,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    img = shared_data / "imaging"
    archive = tmp_path / "archive"
    (archive / "series").mkdir(parents=True)
    (archive / "atlas").mkdir()
    for f in sorted((img / "dicom2nifti_series/generic/anatomical/001").glob("*.dcm")):
        shutil.copy(f, archive / "series" / f.name)
    shutil.copy(img / "pydicom_testfiles/test_files/MR_truncated.dcm", archive / "MR_truncated.dcm")
    for ext in ("hdr", "img"):
        shutil.copy(img / f"oro_nifti_analyze/avg152T1.{ext}", archive / "atlas" / f"avg152T1.{ext}")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(_example(), str(DOC), "exec"), namespace)  # the documented example itself
    out = capsys.readouterr().out
    assert "MR_truncated.dcm" in out and "Fix:" in out  # the bad file is reported, the batch went on
    assert "[4, 256, 256]" in out  # the series was converted
    volumes = sorted((tmp_path / "runs/r1/volumes").glob("*.nii.gz"))
    assert len(volumes) == 2
    assert sorted(nib.load(v).shape for v in volumes) == [(4, 256, 256), (91, 109, 91)]
