"""ECG strips of the highest-scoring windows of ``window_anomalies.parquet`` (flagged beats marked).

Reuses :func:`medmm.signals.plot.plot_ecg_strip`; the lead is re-read at its native rate from the
signals run's input (as scoring does). Titles name the record, channel and window (as the tables do),
never a patient.

>>> from medmm.anomaly.window_plot import top_windows
>>> import pandas as pd
>>> w = pd.DataFrame({"score": [3.0, None, 9.0], "n_flagged": [0, 0, 2]})
>>> top_windows(w, 2).index.tolist()
[2, 0]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["plot_top_windows", "top_windows"]

#: seconds of trace drawn before and after the window
MARGIN_S = 1.0


def top_windows(windows: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` rows of ``windows`` with the highest ``score`` (no score: never), highest first.

    Ties keep table order (a stable sort). See the module example.
    """
    scored = windows[windows["score"].notna()]
    return scored.sort_values("score", ascending=False, kind="stable").head(max(int(n), 0))


def plot_top_windows(
    score_dir: Path,
    signals_run: Path,
    n: int,
    *,
    out_dir: Path | None = None,
    input_root: Path | None = None,
) -> list[Path]:
    """Draw the ``n`` highest-scoring windows of ``score_dir/window_anomalies.parquet`` as ECG strips.

    Each PNG (``out_dir`` or ``score_dir/top_windows``, ``top_window_<rank>.png``) shows the window
    (shaded when flagged) with ``MARGIN_S`` on each side (earlier ``top_window_*.png`` there are
    removed first), the detected R peaks, the beats the model
    flagged, and the reference beat symbols of ``beats.parquet`` when the run has them (evaluation
    only). A record whose waveform cannot be re-read is left out (logged as its error class).

    Parameters
    ----------
    score_dir : pathlib.Path
        Folder with ``window_anomalies.parquet`` and ``anomalies.parquet`` (``medmm anomaly score``).
    signals_run : pathlib.Path
        The signals run those were scored from (``beats.parquet``, ``run.json``).
    n : int
        How many windows.
    out_dir, input_root : pathlib.Path, optional
        Where the PNGs go; the signals input root (default: from the run's ``run.json``).

    Returns
    -------
    list of pathlib.Path
        The files written, best window first.

    Examples
    --------
    >>> plot_top_windows(Path("runs/anomaly"), Path("runs/sig"), 3)  # doctest: +SKIP
    [PosixPath('runs/anomaly/top_windows/top_window_1.png'), ...]
    """
    import logging

    from medmm.anomaly.runs import read_run_lead
    from medmm.errors import InputError
    from medmm.signals.plot import plot_ecg_strip

    log = logging.getLogger(__name__)
    score_dir, signals_run = Path(score_dir), Path(signals_run)
    out_dir = Path(out_dir) if out_dir is not None else score_dir / "top_windows"
    best = top_windows(pd.read_parquet(score_dir / "window_anomalies.parquet"), n)
    anomalies = pd.read_parquet(
        score_dir / "anomalies.parquet", columns=["record", "channel", "sample", "flag"]
    )
    beats = pd.read_parquet(signals_run / "beats.parquet")
    for old in out_dir.glob("top_window_*.png"):  # an earlier, longer --plot would leave stale ranks
        old.unlink()
    leads: dict[tuple[str, str], tuple[np.ndarray, float] | None] = {}
    written: list[Path] = []
    for rank, win in enumerate(best.to_dict("records"), start=1):
        key = (str(win["record"]), str(win["channel"]))
        if key not in leads:
            try:
                leads[key] = read_run_lead(signals_run, key[0], key[1], input_root)
            except (InputError, OSError, ValueError) as exc:
                log.warning("top window %d: waveform not re-readable (%s)", rank, type(exc).__name__)
                leads[key] = None
        lead = leads[key]
        if lead is None:
            continue
        signal, fs = lead
        rb = beats[(beats["record"].astype(str) == key[0]) & (beats["channel"].astype(str) == key[1])]
        ra = anomalies[
            (anomalies["record"].astype(str) == key[0]) & (anomalies["channel"].astype(str) == key[1])
        ]
        sym = rb["ref_symbol"].fillna("").astype(str) if "ref_symbol" in rb else pd.Series([], dtype=str)
        has_ref = bool((sym != "").any())
        a, b = float(win["span_start_s"]), float(win["span_stop_s"])
        kind = (
            f"anchored window {win['window']} ({win['anchor']})"
            if win["anchor"]
            else f"window {win['window']}"
        )
        title = (
            f"#{rank}: record {key[0]} {key[1]} {kind}, {a:.0f}-{b:.0f} s: score {win['score']:.1f}, "
            f"{win['n_flagged']}/{win['n_beats']} beats flagged ({win['status']})"
        )
        path = out_dir / f"top_window_{rank}.png"
        plot_ecg_strip(
            signal,
            fs,
            peaks=rb["sample"].to_numpy(dtype=np.int64),
            ref_peaks=rb.loc[sym != "", "sample"].to_numpy(dtype=np.int64) if has_ref else None,
            ref_symbols=[str(x) for x in sym[sym != ""]] if has_ref else None,
            flagged_windows=[(a, b)] if win["flag"] else None,
            flagged_beats=ra.loc[ra["flag"].astype(bool), "sample"].to_numpy(dtype=np.int64),
            start_s=max(0.0, a - MARGIN_S),
            duration_s=(b - a) + 2 * MARGIN_S,
            title=title,
            out=path,
        )
        written.append(path)
    return written
