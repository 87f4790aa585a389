"""``write_store`` killed half-way never leaves a store that maps ids to another write's rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medmm.errors import InputError
from medmm.models.store import ArrayStore, write_store


def _interrupt_on_call(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """``numpy.save`` raises KeyboardInterrupt (a killed run) on its ``n``-th call."""
    real = np.save
    calls = {"n": 0}

    def save(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(np, "save", save)


@pytest.mark.parametrize("nth", [1, 2])
def test_interrupted_rewrite_is_refused_not_misread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nth: int
) -> None:
    d = tmp_path / "inputs" / "signal"
    write_store(d, ["a", "b"], np.array([[1.0], [2.0]]))
    _interrupt_on_call(monkeypatch, nth)
    with pytest.raises(KeyboardInterrupt):
        write_store(d, ["b", "a"], np.array([[2.0], [1.0]]))
    monkeypatch.undo()
    with pytest.raises(InputError, match=r"half-written.*Fix: re-run `medmm align"):
        ArrayStore(d)
    assert not [p.name for p in d.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind
    write_store(d, ["b", "a"], np.array([[2.0], [1.0]]))  # the next run's write repairs it
    assert ArrayStore(d).get("a")[0].tolist() == [1.0]


def test_arrays_of_different_lengths_are_refused(tmp_path: Path) -> None:
    write_store(tmp_path, ["a", "b"], np.zeros((2, 1)))
    np.save(tmp_path / "ids.npy", np.asarray(["a", "b", "c"]))  # a store written by an older version
    with pytest.raises(InputError, match=r"different numbers of items.*'ids.npy': 3, 'x.npy': 2"):
        ArrayStore(tmp_path)


def test_features_of_an_earlier_write_are_removed(tmp_path: Path) -> None:
    write_store(tmp_path, ["a", "b"], np.zeros((2, 1)), np.ones((2, 3)))
    assert ArrayStore(tmp_path).n_features == 3
    write_store(tmp_path, ["a"], np.zeros((1, 1)))
    store = ArrayStore(tmp_path)
    assert store.features is None and store.get("a")[1] is None
