"""Session 6's cheaper table building gives what the plain numpy/Arrow forms give."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medmm.reports.batch_labels import _sort_by


def test_sort_by_is_lexsort_packed_and_not() -> None:
    rng = np.random.default_rng(3)
    for size, top in [(0, 5), (1, 5), (50, 3), (2_000, 40), (2_000, 1 << 30), (300, 1 << 40)]:
        k1, k2, k3 = (rng.integers(0, top, size) for _ in range(3))
        assert np.array_equal(_sort_by(k1, k2, k3), np.lexsort((k3, k2, k1)))
        k1, k2 = np.sort(k1), np.zeros(size, dtype=np.int64)  # many ties: stable order kept
        assert np.array_equal(_sort_by(k1, k2, k2), np.lexsort((k2, k2, k1)))


def _find_sizes_by_scanning(text: str) -> list[tuple[int, int, str, tuple[float, ...], str]]:
    """:func:`find_sizes` as first written: each pattern's own ``finditer`` over the whole text."""
    from medmm.reports import measurements as ms

    found: list[tuple[int, int, str, tuple[float, ...], str]] = []
    taken: list[tuple[int, int]] = []
    for kind, rx in (("dimensions", ms._DIMS), ("range", ms._RANGE), ("single", ms._SINGLE)):
        for m in rx.finditer(text):
            a, b = m.span()
            if any(not (b <= s or a >= e) for s, e in taken):
                continue
            g = m.groups()
            if kind == "dimensions":
                nums = [g[0], g[2]] + ([g[4]] if g[4] else [])
                units = [g[1] or g[5], g[3] or g[5]] + ([g[5]] if g[4] else [])
            elif kind == "range":
                nums, units = [g[0], g[2]], [g[1] or g[3], g[3]]
            else:
                nums, units = [g[0]], [g[1]]
            vals = tuple(ms.to_mm(float(n), u) for n, u in zip(nums, units, strict=True))
            found.append((a, b, m.group(0), vals, kind))
            taken.append((a, b))
    return sorted(found, key=lambda x: x[0])


def test_find_sizes_tried_at_digits_is_the_full_scan() -> None:
    import random

    from medmm.reports.measurements import find_sizes

    pieces = [
        "3", "12", "1.5", ".5", "0.", ".", "..", " ", "  ", "-", "\n", "mm", "MM", "Mm", "cm", "CM", "a1",
        "millimeter", "MILLIMETRES", "centimeters", "x", "X", "by", "to", "nodule", "a", "_", "2.", ".2.",
        "\u00d7", "\u2013", "\u0663",
    ]  # fmt: skip
    rng = random.Random(6)
    n_found = 0
    for _ in range(20_000):
        if rng.random() < 0.5:
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 18)))
        else:  # size-like: numbers and units with separators and noise between
            text = "".join(
                rng.choice(["3", "1.5", ".5", "12", "0.", "a2"]) + rng.choice(["", " ", "  ", "-"])
                + rng.choice(["mm", "cm", "CM", "millimeters", "", "x", " by ", "-", " to "])
                + rng.choice(["", " ", ".", ", ", "\n", rng.choice(pieces)])
                for _ in range(rng.randint(1, 6))
            )  # fmt: skip
        got = [(m.start, m.end, m.text, m.values_mm, m.kind) for m in find_sizes(text)]
        assert got == _find_sizes_by_scanning(text), text
        n_found += bool(got) and text.isascii()
    assert n_found > 2_000


def test_entity_texts_cut_from_the_joined_text_as_sliced_in_python() -> None:
    from medmm.reports.batch_texts import entity_texts

    rng = np.random.default_rng(5)
    texts = ["No effusion.", "", "Mild edema, left base.", "abc", "x" * 40]
    for overlapping in (False, True):
        for _ in range(200):
            rep, a, b = [], [], []
            for k, t in enumerate(texts):
                cuts = np.sort(rng.integers(0, len(t) + 1, 2 * rng.integers(0, 4)))
                if overlapping and len(cuts) >= 4:  # spans out of text order: the gather path
                    cuts[[1, 2]] = cuts[[2, 1]] if cuts[1] != cuts[2] else cuts[[1, 2]]
                    cuts = np.r_[cuts[2:], cuts[:2]]
                rep += [k] * (len(cuts) // 2)
                a += cuts[0::2].tolist()
                b += np.maximum(cuts[0::2], cuts[1::2]).tolist()
            column, _ = entity_texts(texts, np.array(rep, dtype=np.int64), np.array(a, dtype=np.int64),
                                     np.array(b, dtype=np.int64))  # fmt: skip
            assert column.to_pylist() == [texts[k][x:y] for k, x, y in zip(rep, a, b, strict=True)]


def test_part_files_written_through_fresh_temp_names(tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow as pa
    import pytest

    from medmm.reports.resume import PARTS_DIR, Parts, _write

    parts = Parts(tmp_path)
    ents = pa.table({"report_id": ["a", "a", "b"], "x": [1, 2, 3], "_key": ["ka", "ka", "kb"]})
    labels = pd.DataFrame({"report_id": ["a", "b"], "_key": ["ka", "kb"]}, index=[5, 7])
    reports = pa.table({"report_id": ["a", "b"], "_key": ["ka", "kb"]})
    name = parts.write(["ka", "kb"], ents, labels, reports)
    folder = tmp_path / PARTS_DIR
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{name}-{t}.arrow" for t in ("entities", "labels", "reports")
    )  # nothing left behind
    e, lab, r = parts.merge(["kb"])
    assert e["x"].tolist() == [3] and lab["report_id"].tolist() == ["b"] and r["_key"].tolist() == ["kb"]
    with pytest.raises(TypeError):
        _write(object(), folder / "bad.arrow")  # a failed write leaves no temp file and no file
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{name}-{t}.arrow" for t in ("entities", "labels", "reports")
    )
