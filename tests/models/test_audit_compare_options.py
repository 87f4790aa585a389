"""`models compare` option mistakes fail before any model is trained, with one readable line (audit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--strategy", "bogus"], "error: --strategy ['bogus']: unknown fusion; choose from"),
        (["--image-input", "foo=1"], "image_input.foo: unknown key (valid here: source, size"),
        (["--epochs", "0"], "train.epochs: Input should be greater than or equal to 1 (got 0)"),
    ],
)
def test_compare_option_errors(tiny_run: Path, tmp_path: Path, option: list[str], expected: str) -> None:
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["models", "compare", str(tiny_run), "--out", str(out), *option])
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert "errors.pydantic.dev" not in res.output
    assert not (out / "unimodal_image").exists()  # nothing was trained first
