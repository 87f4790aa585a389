"""`medmm share` on a run holding `top_windows/` (`medmm anomaly score --plot`): the ECG strips are not
shared (their titles name the record) and the share report names the folder by its role, like
`figures/`, never as an "unknown folder fol-..." someone put in the run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from medmm.cli import app
from medmm.share.policy import RUN_FOLDERS, dropped_reason


def _run_with_top_windows(folder: Path) -> tuple[Path, Path]:
    """A run with a reports table and the `top_windows/` PNGs `medmm anomaly score --plot` writes."""
    from medmm.pseudonym import Pseudonymizer, load_key
    from medmm.runinfo import claim_site_key

    key = folder / "site.key"
    key.write_text("cd" * 32 + "\n")
    key.chmod(0o600)
    run = folder / "run"
    claim_site_key(run, Pseudonymizer(load_key(key)).check_value())
    pd.DataFrame(
        {"report_id": ["rep-1"], "section": ["FINDINGS"], "start": [0], "end": [5], "text": ["heart"]}
        | {"label": ["ANATOMY"]}
    ).to_parquet(run / "entities.parquet")
    (run / "top_windows").mkdir()
    for rank in (1, 2):
        (run / "top_windows" / f"top_window_{rank}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return run, key


def test_top_windows_plots_are_figures_never_shared() -> None:
    assert "top_windows" in RUN_FOLDERS and "figures" in RUN_FOLDERS
    reason = dropped_reason("top_windows/top_window_1.png")
    assert reason is not None and reason.startswith("figures") and "record" in reason


def test_the_share_report_names_top_windows_as_figures(tmp_path: Path) -> None:
    run, key = _run_with_top_windows(tmp_path)
    res = CliRunner().invoke(app, ["share", str(run), "--out", str(tmp_path / "s"), "--key-file", str(key)])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "s" / "top_windows").exists()
    report = json.loads((tmp_path / "s" / "share_report.json").read_text())
    assert not any("unknown folder" in entry for entry in [*report["dropped"], *report["left_out"]])
    assert report["dropped"]["top_windows/"] == {dropped_reason("top_windows/top_window_1.png"): 2}
    assert "unknown folder" not in res.output
