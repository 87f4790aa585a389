"""Of several files with one SOP Instance UID, ``assemble_series(..., decodable=decodable_in(root))``
keeps the first (in path order) whose pixel data decodes: pydicom's ``JPEG-lossy.dcm`` (a 12-bit JPEG
no installed decoder reads) and ``JPGExtended.dcm`` (the same image, decodable) share their UID, and
the decodable one is kept, whatever the names' order. Without ``decodable`` the first in path order is
kept, as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from medmm.imaging.convert import convert_stack
from medmm.imaging.dicom_header import read_dicom_header
from medmm.imaging.errors import PixelDecodeError
from medmm.imaging.records import DicomInstance
from medmm.imaging.series import assemble_series, decodable_in
from medmm.pseudonym import Pseudonymizer
from medmm.records import Status


def _archive(root: Path, names: dict[str, str]) -> list[DicomInstance]:
    """Copies of pydicom test files under new names (relative path -> test file name)."""
    insts = []
    for rel, name in names.items():
        found = get_testdata_file(name)
        assert found is not None, name
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(found, root / rel)
        insts.append(read_dicom_header(root / rel, rel))
    return insts


def test_decodable_copy_is_kept(tmp_path: Path) -> None:
    insts = _archive(tmp_path, {"a/JPEG-lossy.dcm": "JPEG-lossy.dcm", "b/JPGExtended.dcm": "JPGExtended.dcm"})
    assert insts[0].sop_instance_uid == insts[1].sop_instance_uid
    out = assemble_series(insts, decodable=decodable_in(tmp_path))
    assert [s.paths for s in out.stacks] == [["b/JPGExtended.dcm"]]
    dup = out.outcomes["a/JPEG-lossy.dcm"]
    assert dup.status is Status.duplicate
    assert dup.reason == (
        "same SOP Instance UID as b/JPGExtended.dcm (kept that one: this copy's pixel data cannot be decoded)"
    )
    rec = convert_stack(out.stacks[0], insts, tmp_path, tmp_path / "run", Pseudonymizer(b"k" * 32))
    assert rec.shape == [rec.shape[0], rec.shape[1], 1] and rec.sources == ["b/JPGExtended.dcm"]


def test_without_decodable_the_first_in_path_order_is_kept(tmp_path: Path) -> None:
    insts = _archive(tmp_path, {"a/JPEG-lossy.dcm": "JPEG-lossy.dcm", "b/JPGExtended.dcm": "JPGExtended.dcm"})
    out = assemble_series(insts)
    assert [s.paths for s in out.stacks] == [["a/JPEG-lossy.dcm"]]
    assert (
        out.outcomes["b/JPGExtended.dcm"].reason
        == "same SOP Instance UID as a/JPEG-lossy.dcm (kept that one)"
    )
    with pytest.raises(PixelDecodeError, match="12-bit JPEG"):  # what the kept copy then gives
        convert_stack(out.stacks[0], insts, tmp_path, tmp_path / "run", Pseudonymizer(b"k" * 32))


def test_decodable_is_asked_only_about_repeated_instances_until_one_decodes(tmp_path: Path) -> None:
    insts = _archive(
        tmp_path,
        {
            "1/JPEG-lossy.dcm": "JPEG-lossy.dcm",
            "2/JPGExtended.dcm": "JPGExtended.dcm",
            "3/JPGExtended.dcm": "JPGExtended.dcm",
            "ct.dcm": "CT_small.dcm",
        },
    )
    check = decodable_in(tmp_path)
    asked: list[str] = []

    def spy(inst: DicomInstance) -> bool:
        asked.append(inst.path)
        return check(inst)

    out = assemble_series(insts, decodable=spy)
    assert asked == ["1/JPEG-lossy.dcm", "2/JPGExtended.dcm"]  # not CT_small, not the third copy
    assert sorted(p for s in out.stacks for p in s.paths) == ["2/JPGExtended.dcm", "ct.dcm"]
    assert out.outcomes["1/JPEG-lossy.dcm"].reason.endswith("this copy's pixel data cannot be decoded)")
    assert out.outcomes["3/JPGExtended.dcm"].reason == (
        "same SOP Instance UID as 2/JPGExtended.dcm (kept that one)"  # never decoded: no claim about it
    )


def test_no_copy_decodes_keeps_the_first(tmp_path: Path) -> None:
    insts = _archive(tmp_path, {"x/1.dcm": "JPEG-lossy.dcm", "x/2.dcm": "JPEG-lossy.dcm"})
    out = assemble_series(insts, decodable=decodable_in(tmp_path))
    assert [s.paths for s in out.stacks] == [["x/1.dcm"]]
    assert out.outcomes["x/2.dcm"].reason == "same SOP Instance UID as x/1.dcm (kept that one)"
