"""R-peak detector, opt-in small-beat rule (``recover_small_beats``; docs/signals.md "Session 9").

Small normal beats beside a frequent tall PVC population (bigeminy) fall below the adaptive threshold
that follows the PVCs; the rule, off by default, recovers them. The default output must stay that of
the detector without the rule; the flag must reach the detector from ``medmm signals ingest`` and from
the stage settings, be recorded in ``run.json`` and be part of the resume key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.signals.beats import detect_rpeaks, match_reference, rpeaks, simulate_ecg
from medmm.signals.process import Settings

FS = 360.0
MITDB = "signals/mitdb_subset"


def _bigeminy(seed: int, seconds: float = 60.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """50 bpm small normal beats (R 0.3 mV) each followed 0.55 s later by a tall wide PVC (1.8 mV)."""
    ecg, normal = simulate_ecg(FS, duration_s=seconds, hr_bpm=50.0, seed=seed, noise=0.01, rr_jitter=0.02)
    ecg = 0.3 * ecg
    t = np.arange(ecg.size) / FS
    pvcs = []
    for b in normal[:-1]:
        c = b / FS + 0.55
        ecg += 1.8 * np.exp(-0.5 * ((t - c) / 0.03) ** 2) - 0.5 * np.exp(-0.5 * ((t - c - 0.28) / 0.06) ** 2)
        pvcs.append(round(c * FS))
    return ecg, normal, np.asarray(pvcs, dtype=np.int64)


@pytest.mark.parametrize("seed", [0, 1])
def test_bigeminy_small_normal_beats_found_only_with_the_flag(seed: int) -> None:
    ecg, normal, pvcs = _bigeminy(seed)
    default = detect_rpeaks(ecg, FS)
    flagged = detect_rpeaks(ecg, FS, recover_small_beats=True)
    truth = np.sort(np.concatenate([normal, pvcs]))
    assert match_reference(default, pvcs, FS).fn == 0  # every PVC either way
    assert match_reference(flagged, pvcs, FS).fn == 0
    assert match_reference(default, normal, FS).tp <= 0.1 * normal.size  # the default misses them
    assert match_reference(flagged, normal, FS).fn <= 2  # the flag finds them (at most the edges lost)
    assert match_reference(default, truth, FS).fp == 0
    assert match_reference(flagged, truth, FS).fp == 0


def test_default_never_runs_the_rule() -> None:
    ecg, _, _ = _bigeminy(2, seconds=30.0)
    with mock.patch.object(rpeaks, "_small_beats", side_effect=AssertionError("rule ran")):
        default = detect_rpeaks(ecg, FS)
        assert np.array_equal(default, detect_rpeaks(ecg, FS, recover_small_beats=False))
    assert default.dtype == np.int64
    assert not np.array_equal(default, detect_rpeaks(ecg, FS, recover_small_beats=True))


def _load(shared_data: Path, record: str) -> tuple[np.ndarray, np.ndarray]:
    wfdb = pytest.importorskip("wfdb")
    path = shared_data / MITDB / record
    if not path.with_suffix(".hea").exists():
        pytest.skip(f"{path}.hea not in the shared data")
    sig = wfdb.rdrecord(str(path), channels=[0]).p_signal[:, 0]
    return sig, np.asarray(wfdb.rdann(str(path), "atr").sample)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("record", "off", "on", "added"),
    # docs/signals.md "Session 9" table (FP, FN at 150 ms) and the one event the rule adds per record
    [("108", (5, 4), (6, 4), 193700), ("114", (1, 0), (2, 0), 85123)],
)
def test_mitdb_default_unchanged_and_rule_as_measured(
    shared_data: Path, record: str, off: tuple[int, int], on: tuple[int, int], added: int
) -> None:
    sig, ref = _load(shared_data, record)
    default = detect_rpeaks(sig, FS)
    flagged = detect_rpeaks(sig, FS, recover_small_beats=True)
    r0, r1 = match_reference(default, ref, FS, tol_s=0.15), match_reference(flagged, ref, FS, tol_s=0.15)
    assert (r0.fp, r0.fn) == off
    assert (r1.fp, r1.fn) == on
    assert np.setdiff1d(flagged, default).tolist() == [added]
    assert np.setdiff1d(default, flagged).size == 0


def test_settings_reject_a_non_boolean_flag() -> None:
    assert Settings().recover_small_beats is False
    assert Settings().options()["recover_small_beats"] is False
    with pytest.raises(ConfigError, match=r"recover_small_beats must be true or false.*Fix: write"):
        Settings(recover_small_beats="no")  # type: ignore[arg-type]


def _write_record(d: Path) -> int:
    """A 60 s bigeminy WFDB record; returns its number of small normal beats."""
    wfdb = pytest.importorskip("wfdb")
    ecg, normal, _ = _bigeminy(3)
    wfdb.wrsamp(
        "bigem",
        fs=FS,
        units=["mV"],
        sig_name=["II"],
        p_signal=ecg[:, None],
        fmt=["16"],
        adc_gain=[1000.0],
        baseline=[0],
        write_dir=str(d),
    )
    return int(normal.size)


def _ingest(root: Path, out: Path, key: Path, *extra: str) -> dict[str, Any]:
    args = ["signals", "ingest", str(root), "--out", str(out), "--workers", "0", "--key-file", str(key)]
    res = CliRunner().invoke(app, [*args, *extra])
    assert res.exit_code == 0, res.output
    return json.loads((out / "run.json").read_text())["stages"]["signals"]


def test_cli_flag_reaches_the_detector_and_the_resume_key(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    n_normal = _write_record(root)
    key = tmp_path / "k"
    key.write_text("ab" * 32 + "\n")
    out = tmp_path / "run"

    first = _ingest(root, out, key)
    beats_default = len(pd.read_parquet(out / "beats.parquet"))
    assert first["options"]["recover_small_beats"] is False

    again = _ingest(root, out, key, "--recover-small-beats")  # same run directory, flag on
    assert again["options"]["recover_small_beats"] is True
    assert again["counts"]["resumed"] == 0  # beats recomputed, not the saved default result
    beats_flagged = len(pd.read_parquet(out / "beats.parquet"))
    assert beats_flagged - beats_default >= n_normal - 3  # the small normal beats are now there
    assert again["counts"]["beats"] == beats_flagged

    third = _ingest(root, out, key, "--recover-small-beats")
    assert third["counts"]["resumed"] == 1  # same flag: the saved result is reused
    back = _ingest(root, out, key)  # flag off again: recomputed, the default beats come back
    assert back["counts"]["resumed"] == 0
    assert len(pd.read_parquet(out / "beats.parquet")) == beats_default


def test_chunked_records_take_the_flag_too(tmp_path: Path) -> None:
    # chunk_s 20 s: the 60 s record is read chunk by chunk (medmm/signals/chunked.py), not whole
    from medmm.pseudonym import Pseudonymizer
    from medmm.signals.pipeline import run_signals

    root = tmp_path / "in"
    root.mkdir()
    n_normal = _write_record(root)
    counts: dict[bool, dict[str, int]] = {}
    for flag in (False, True):
        out = tmp_path / f"run{flag}"
        settings = Settings(chunk_s=20.0, overlap_s=5.0, recover_small_beats=flag)
        counts[flag] = run_signals(
            root, out, settings=settings, workers=0, pseudonymizer=Pseudonymizer(b"f" * 32)
        )
    assert counts[True]["beats"] - counts[False]["beats"] >= n_normal - 3


def test_workflow_yaml_option_reaches_the_detector(tmp_path: Path) -> None:
    (tmp_path / "ecg").mkdir()
    n_normal = _write_record(tmp_path / "ecg")
    (tmp_path / "site.key").write_text("ab" * 32 + "\n")
    beats = {}
    for flag in ("false", "true"):
        wf = tmp_path / f"w{flag}.yaml"
        wf.write_text(
            f"name: holter\nrun_dir: run{flag}\nkey_file: site.key\nstages:\n"
            f"  - {{stage: signals, input: ecg, options: {{recover_small_beats: {flag}}}}}\n"
        )
        res = CliRunner().invoke(app, ["run", str(wf), "--workers", "1"])
        assert res.exit_code == 0, res.output
        run_json = json.loads((tmp_path / f"run{flag}" / "run.json").read_text())
        assert run_json["stages"]["signals"]["options"]["recover_small_beats"] is (flag == "true")
        beats[flag] = len(pd.read_parquet(tmp_path / f"run{flag}" / "beats.parquet"))
    assert beats["true"] - beats["false"] >= n_normal - 3
    wf = tmp_path / "bad.yaml"
    wf.write_text(
        "name: holter\nrun_dir: runbad\nkey_file: site.key\nstages:\n"
        "  - {stage: signals, input: ecg, options: {recover_small_beats: 'sometimes'}}\n"
    )
    res = CliRunner().invoke(app, ["run", str(wf)])
    assert res.exit_code == 2 and "recover_small_beats must be true or false" in res.output
