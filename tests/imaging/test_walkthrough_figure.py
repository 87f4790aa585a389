"""The walkthrough notebook draws the largest ingested volume and saves the PNG under the run's figures/."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_walkthrough.ipynb"

CHECK = """
import base64, nibabel as _nib
_shape = lambda v: _nib.load(run / v.path).shape[:3]
_voxels = {v.volume_id: int(__import__("numpy").prod(_shape(v))) for v in volumes.itertuples()}
assert _voxels[vol.volume_id] == max(_voxels.values()) and _voxels[vol.volume_id] > 16 * 16 * 5, _voxels
_png = run / "figures" / f"{vol.volume_id}.png"
assert _png.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n", _png
print("checked", vol.volume_id, tuple(vol["shape"]))
"""


@pytest.mark.slow
def test_imaging_figure(tmp_path: Path, key_file: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first_reports = next(i for i, c in enumerate(nb.cells) if "parse_reports" in c.source)
    nb.cells = [*nb.cells[:first_reports], nbformat.v4.new_code_cell(CHECK)]  # the imaging part only
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    out = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert out.startswith("checked vol-")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the volume figure was not displayed"
