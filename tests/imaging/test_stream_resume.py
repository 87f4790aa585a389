"""A header longer than the first read is walked on from the element that did not fit: same elements."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from medmm.imaging import _element_stream


def _parse(blob: bytes) -> object:
    stream = _element_stream.parse_stream(io.BytesIO(blob), len(blob))
    if stream is None:
        return None
    values = {tag: stream.value(tag) for tag in stream.elements}  # the bytes each element holds
    return stream.transfer_syntax, stream.implicit, stream.elements, stream.pixel, values


@pytest.mark.parametrize("first_read", [160, 700, 4096])
def test_resumed_walk_equals_one_read(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, first_read: int
) -> None:
    files = sorted((shared_data / "imaging" / "dicom2nifti_series").rglob("*.dcm"))[::3]
    files += sorted((shared_data / "imaging" / "pydicom_testfiles").rglob("*.dcm"))
    resumed = parsed = 0
    for path in files:
        data = path.read_bytes()
        for blob in (data, data[: len(data) // 2], data[:3000]):
            monkeypatch.setattr(_element_stream, "_FIRST_READ", len(blob) + 1)  # all in one read
            whole = _parse(blob)
            monkeypatch.setattr(_element_stream, "_FIRST_READ", first_read)  # many short reads
            assert _parse(blob) == whole, (path, len(blob))
            parsed += whole is not None
            resumed += whole is not None and len(blob) > first_read
    assert parsed > 50 and resumed > 50
