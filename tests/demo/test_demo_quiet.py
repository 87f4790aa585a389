"""`medmm demo` prints no third-party notice its user can do nothing about: MONAI's nvImageCodec WARNING
log line and UserWarning (a GPU DICOM decoder absent on this machine) are silenced, medmm's own warnings
are not."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app


def test_demo_output_has_no_monai_warning_lines(
    tmp_path: Path,
    key_file: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    recwarn: pytest.WarningsRecorder,
) -> None:
    warnings.simplefilter("always")  # a notice shown earlier in this process is shown again
    caplog.set_level(logging.WARNING)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    printed = result.output + "".join(capfd.readouterr())
    assert [line for line in printed.splitlines() if "WARNING" in line and "monai" in line] == []
    assert "nvImageCodec" not in printed
    assert [r.getMessage() for r in caplog.records if r.name.startswith("monai")] == []
    assert [str(w.message) for w in recwarn if "nvImageCodec" in str(w.message)] == []


def test_the_filters_are_targeted_and_removed_after_the_demo(caplog: pytest.LogCaptureFixture) -> None:
    from medmm.models.quiet import quiet_monai_notices

    monai = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        with quiet_monai_notices():
            monai.warning("nvImageCodec is not available; skipping pydicom decoder plugin registration.")
            monai.warning("another MONAI warning")  # not this notice: shown
            warnings.warn("medmm: a warning of medmm's own", UserWarning, stacklevel=1)
        monai.warning("nvImageCodec is not available; skipping pydicom decoder plugin registration.")
    assert [str(w.message) for w in seen] == ["medmm: a warning of medmm's own"]
    assert [r.getMessage() for r in caplog.records] == [
        "another MONAI warning",
        "nvImageCodec is not available; skipping pydicom decoder plugin registration.",
    ]
