"""A chest X-ray exported as PNG/JPEG/TIFF is quarantined with a fix that names a way to convert it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medmm.ingest.pipeline import ingest_archive
from medmm.tables import read_table


def test_photo_formats_name_a_converter(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    pixels = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    for ext in ("png", "jpg", "tif"):
        pixels.save(root / f"cxr.{ext}")
    ingest_archive(root, tmp_path / "run", workers=1, processes=False, key_file=tmp_path / "k")
    m = read_table(tmp_path / "run" / "manifest.parquet").set_index("path")
    for name, fmt in (("cxr.png", "PNG"), ("cxr.jpg", "JPEG"), ("cxr.tif", "TIFF")):
        assert m.loc[name, "status"] == "quarantined"
        reason = m.loc[name, "reason"]
        assert reason.startswith(f"UnsupportedFormatError: {name}: {fmt} image: ")
        assert "Fix: wrap it as a DICOM secondary capture (e.g. DCMTK img2dcm)" in reason
        assert "pixel spacing and orientation are unknown" in reason
