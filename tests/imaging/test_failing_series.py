"""Each dicom2nifti ``failing/`` case is quarantined (or split) with its specific reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmm.imaging import assemble_series, read_dicom_header

FAILING = "imaging/dicom2nifti_series/failing"


@pytest.mark.parametrize(
    ("case", "errors", "text"),
    [
        ("gantrytilting/001", {"GantryTiltError"}, "gantry tilt of 14.0 degrees"),
        ("notavolume/001", {"NotAVolumeError"}, "not a volume"),
        ("slicecount/001", {"TooFewSlicesError"}, "too few slices"),
        ("sliceincrement/001", {"MissingSliceError"}, "1 slice(s) missing"),
        ("sliceincrement/002", {"MissingSliceError", "GantryTiltError"}, "1 slice(s) missing"),
    ],
)
def test_failing_case_reason(shared_data: Path, case: str, errors: set[str], text: str) -> None:
    files = sorted((shared_data / FAILING / case).iterdir())
    insts = [read_dicom_header(p, p.relative_to(shared_data).as_posix()) for p in files]
    out = assemble_series(insts)
    assert not out.outcomes
    (stack,) = out.stacks
    assert {p.error for p in stack.problems} == errors
    assert text in stack.reason
    assert stack.reason.startswith(stack.problems[0].error + ": imaging/dicom2nifti_series/failing/")
    assert sorted(stack.paths) == sorted(i.path for i in insts)


def test_mixed_orientation_is_split(shared_data: Path) -> None:
    files = sorted((shared_data / FAILING / "sliceorientation/001").iterdir())
    insts = [read_dicom_header(p, p.relative_to(shared_data).as_posix()) for p in files]
    out = assemble_series(insts)
    assert len(out.stacks) == 2
    for stack in out.stacks:
        assert stack.split_reason.startswith("mixed orientation")
        assert len(stack.paths) == 2
        # each half is then too short to verify its spacing; the reason names the split too
        assert "too few slices" in stack.reason and "mixed orientation" in stack.reason
    assert sorted(p for s in out.stacks for p in s.paths) == sorted(i.path for i in insts)
