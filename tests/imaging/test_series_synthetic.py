"""Slice sorting, splitting and geometry checks of assemble_series on synthetic header summaries."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmm.imaging.geometry import analyze_positions, normal_of
from medmm.imaging.records import DicomInstance, DicomKind
from medmm.imaging.series import assemble_series
from medmm.records import Status

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
SAGITTAL = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]


def inst(n: int, pos: list[float], iop: list[float] = AXIAL, **kw: object) -> DicomInstance:
    fields: dict[str, object] = dict(
        path=f"s/{n:03d}.dcm",
        sop_instance_uid=f"1.2.{n}",
        study_uid="1.9",
        series_uid="1.9.1",
        kind=DicomKind.image,
        modality="CT",
        rows=4,
        columns=4,
        instance_number=n,
        image_position=pos,
        image_orientation=iop,
        pixel_spacing=[0.5, 0.5],
    )
    fields.update(kw)
    return DicomInstance(**fields)  # type: ignore[arg-type]


def test_sorted_along_normal_not_instance_number() -> None:
    # instance numbers run opposite to the slice positions, and files come shuffled
    items = [inst(n, [0, 0, 10.0 - 2.0 * n]) for n in range(1, 6)]
    random.Random(0).shuffle(items)
    out = assemble_series(items)
    (stack,) = out.stacks
    assert stack.paths == [f"s/{n:03d}.dcm" for n in (5, 4, 3, 2, 1)]
    assert stack.spacing == pytest.approx(2.0)
    assert stack.step == pytest.approx([0, 0, 2.0])
    assert not stack.problems and not stack.warnings


def test_oblique_normal_sorting() -> None:
    iop = [1, 0, 0, 0, math.cos(0.3), -math.sin(0.3)]
    normal = normal_of(iop)
    items = [inst(n, list(normal * (3 - n) * 1.5), iop) for n in range(4)]
    (stack,) = assemble_series(items).stacks
    assert stack.paths == [f"s/{n:03d}.dcm" for n in (3, 2, 1, 0)]
    assert stack.spacing == pytest.approx(1.5)


def test_missing_slice_quarantines_with_count() -> None:
    items = [inst(n, [0, 0, float(z)]) for n, z in enumerate([0, 1, 2, 5, 6])]
    (stack,) = assemble_series(items).stacks
    assert [p.error for p in stack.problems] == ["MissingSliceError"]
    assert "2 slice(s) missing" in stack.reason


def test_duplicate_position_different_instances_quarantined() -> None:
    items = [inst(n, [0, 0, float(z)]) for n, z in enumerate([0, 1, 1, 2, 3])]
    (stack,) = assemble_series(items).stacks
    assert [p.error for p in stack.problems] == ["DuplicatePositionError"]


def test_same_sop_instance_is_duplicate_outcome() -> None:
    items = [inst(n, [0, 0, float(n)]) for n in range(4)]
    copy = items[2].model_copy(update={"path": "t/copy.dcm"})
    out = assemble_series([*items, copy])
    assert out.outcomes["t/copy.dcm"].status is Status.duplicate
    assert "s/002.dcm" in out.outcomes["t/copy.dcm"].reason
    assert len(out.stacks[0].paths) == 4


def test_gantry_tilt_quarantined_or_sheared() -> None:
    tilt = math.radians(15)
    iop = [1, 0, 0, 0, math.cos(tilt), -math.sin(tilt)]
    items = [inst(n, [0, 0, 5.0 * n], iop) for n in range(5)]  # table moves along z, slices tilted
    (stack,) = assemble_series(items).stacks
    assert [p.error for p in stack.problems] == ["GantryTiltError"]
    assert "15.0 degrees" in stack.reason
    (ok,) = assemble_series(items, allow_tilt=True).stacks
    assert not ok.problems and "gantry tilt" in ok.warnings[0]
    assert ok.step == pytest.approx([0, 0, 5.0])  # exact world step kept (sheared affine)


def test_split_by_orientation_and_echo() -> None:
    axial = [inst(n, [0, 0, float(n)]) for n in range(3)]
    sag = [inst(10 + n, [float(n), 0, 0], SAGITTAL) for n in range(3)]
    out = assemble_series(axial + sag)
    assert len(out.stacks) == 2
    assert all("mixed orientation" in s.split_reason for s in out.stacks)
    echoes = [inst(20 + n, [0, 0, float(n % 3)], echo_number=1 + n // 3) for n in range(6)]
    out = assemble_series(echoes)
    assert len(out.stacks) == 2 and all(not s.problems for s in out.stacks)
    assert "echo number" in out.stacks[0].split_reason


def test_all_at_one_position_is_not_a_volume() -> None:
    items = [inst(n, [0, 0, 7.0], acquisition_number=n) for n in range(4)]
    (stack,) = assemble_series(items).stacks
    assert stack.problems[0].error == "NotAVolumeError"


def test_two_slices_too_few_single_image_ok() -> None:
    (two,) = assemble_series([inst(0, [0, 0, 0.0]), inst(1, [0, 0, 1.0])]).stacks
    assert two.problems[0].error == "TooFewSlicesError"
    (one,) = assemble_series([inst(0, [0, 0, 0.0])]).stacks
    assert not one.problems and one.paths == ["s/000.dcm"]


def test_nonuniform_spacing_warns() -> None:
    items = [inst(n, [0, 0, z]) for n, z in enumerate([0.0, 1.0, 2.0, 3.3, 4.3])]
    (stack,) = assemble_series(items).stacks
    assert not stack.problems
    assert any("non-uniform" in w for w in stack.warnings)


def test_non_image_kinds_are_outcomes_not_errors() -> None:
    items = [
        DicomInstance(path="ecg.dcm", sop_instance_uid="9.1", kind=DicomKind.waveform, kind_detail="ECG"),
        DicomInstance(path="sr.dcm", sop_instance_uid="9.2", kind=DicomKind.sr, kind_detail="SR"),
        DicomInstance(path="wsi.dcm", sop_instance_uid="9.3", kind=DicomKind.unsupported_image),
    ]
    out = assemble_series(items)
    assert not out.stacks
    assert out.outcomes["ecg.dcm"].status is Status.non_image
    assert "signals stage" in out.outcomes["ecg.dcm"].reason
    assert out.outcomes["sr.dcm"].reason.startswith("sr:")
    assert out.outcomes["wsi.dcm"].status is Status.quarantined
    assert out.outcomes["wsi.dcm"].reason.startswith("UnsupportedImageError")


def test_missing_series_uid_still_groups() -> None:
    items = [inst(n, [0, 0, float(n)], series_uid="", series_number=3) for n in range(4)]
    out = assemble_series(items)
    assert len(out.stacks) == 1 and len(out.stacks[0].paths) == 4


@settings(max_examples=40, deadline=None)
@given(
    zs=st.lists(st.integers(min_value=-50, max_value=50), min_size=1, max_size=12),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_every_file_exactly_once(zs: list[int], seed: int) -> None:
    items = [inst(n, [0, 0, float(z)], echo_number=1 + n % 2) for n, z in enumerate(zs)]
    items.append(DicomInstance(path="x/sr.dcm", sop_instance_uid="7", kind=DicomKind.sr))
    random.Random(seed).shuffle(items)
    out = assemble_series(items)
    placed = [p for s in out.stacks for p in s.paths] + list(out.outcomes)
    assert sorted(placed) == sorted(i.path for i in items)


def test_analyze_positions_reports_offline_positions() -> None:
    rep = analyze_positions([[0, 0, 0], [0, 0, 1], [9, 0, 2], [0, 0, 3]], AXIAL)
    assert rep.off_line_mm > 4


def test_invalid_orientation_means_no_geometry() -> None:
    items = [inst(n, [0, 0, float(n)], [0, 0, 0, 0, 0, 0]) for n in range(3)]
    out = assemble_series(items)
    assert len(out.stacks) == 3  # each image on its own, never stacked along a made-up normal
    assert all("ImageOrientationPatient" in s.warnings[0] for s in out.stacks)


def test_positions_off_one_line_are_not_a_volume() -> None:
    items = [inst(n, p) for n, p in enumerate([[0, 0, 0], [0, 0, 1], [9, 0, 2], [0, 0, 3]])]
    (stack,) = assemble_series(items).stacks
    assert [p.error for p in stack.problems] == ["NotAVolumeError"]
    assert "stray" in stack.reason
