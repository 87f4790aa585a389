"""Session 6's cheaper table building gives what the plain numpy/Arrow forms give."""

from __future__ import annotations

import numpy as np

from medmm.reports.batch_labels import _sort_by


def test_sort_by_is_lexsort_packed_and_not() -> None:
    rng = np.random.default_rng(3)
    for size, top in [(0, 5), (1, 5), (50, 3), (2_000, 40), (2_000, 1 << 30), (300, 1 << 40)]:
        k1, k2, k3 = (rng.integers(0, top, size) for _ in range(3))
        assert np.array_equal(_sort_by(k1, k2, k3), np.lexsort((k3, k2, k1)))
        k1, k2 = np.sort(k1), np.zeros(size, dtype=np.int64)  # many ties: stable order kept
        assert np.array_equal(_sort_by(k1, k2, k2), np.lexsort((k2, k2, k1)))
