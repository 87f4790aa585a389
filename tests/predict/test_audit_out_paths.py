"""`--out` pointing at the wrong kind of path is an error before any scoring (audit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmm.errors import InputError
from medmm.models.runner import evaluate_checkpoint
from medmm.predict.predict import predict_run


def test_predict_out_directory_is_refused_before_loading(tmp_path: Path) -> None:
    # the checkpoint does not even exist: the --out check comes first, so no scoring work is wasted
    with pytest.raises(InputError, match=r"--out is a directory.*predictions\.parquet"):
        predict_run(tmp_path / "model.pt", tmp_path, out=tmp_path)


def test_evaluate_out_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "metrics.txt"
    out.write_text("x")
    with pytest.raises(InputError, match="--out is a file"):
        evaluate_checkpoint(tmp_path / "model.pt", tmp_path, out)
