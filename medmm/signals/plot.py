"""ECG strip plots: a stretch of one lead with detected beats, reference beats and flagged spans.

Uses matplotlib's object API (no ``pyplot`` state), so it is safe in workers and tests.

>>> import numpy as np
>>> fig = plot_ecg_strip(np.sin(np.arange(3600) / 20), 360.0, peaks=np.array([100, 460]))
>>> len(fig.axes)
1
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MultipleLocator
from numpy.typing import NDArray

__all__ = ["plot_ecg_strip"]

_NORMAL_SYMBOLS = {"N", "L", "R", "e", "j", "·", "."}
#: Largest trace range (in ``unit``) drawn on the 0.1 / 0.5 mV paper grid; wider traces (µV or raw ADC
#: values passed with the default ``unit="mV"``) get matplotlib's own ticks instead of 10^5 grid lines.
_PAPER_MAX_MV = 20.0


def plot_ecg_strip(
    ecg: NDArray[np.floating] | NDArray[np.integer],
    fs: float,
    *,
    peaks: NDArray[np.integer] | None = None,
    ref_peaks: NDArray[np.integer] | None = None,
    ref_symbols: Sequence[str] | None = None,
    flagged_windows: Sequence[tuple[float, float]] | None = None,
    flagged_beats: NDArray[np.integer] | None = None,
    start_s: float = 0.0,
    duration_s: float = 10.0,
    title: str = "",
    unit: str = "mV",
    out: Path | None = None,
) -> Figure:
    """Draw ``duration_s`` seconds of one ECG lead from ``start_s``, on ECG-paper-like grid.

    Parameters
    ----------
    ecg : numpy.ndarray
        One lead, shape ``(n,)``; NaN gaps show as breaks.
    fs : float
        Sampling rate in Hz.
    peaks : numpy.ndarray, optional
        Detected R peaks (sample indices): red triangles on the trace.
    ref_peaks, ref_symbols : optional
        Reference beats (sample indices) and their annotation symbols (``"N"``, ``"V"`` ...), written
        above the trace; non-normal symbols in orange.
    flagged_windows : sequence of (start_s, end_s), optional
        Spans (record time, seconds) shaded in red, e.g. low-quality or anomalous windows.
    flagged_beats : numpy.ndarray, optional
        Sample indices of flagged beats (e.g. anomalies): a shaded band of +-0.2 s around each.
    start_s, duration_s : float
        The stretch to draw (record time, seconds).
    title : str
        Figure title. Never put patient identity in it.
    unit : str
        Y-axis unit label.
    out : pathlib.Path, optional
        When given, the figure is also written there as PNG (folders are created).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(3600) / 360.0
    >>> ecg = np.sin(2 * np.pi * t)
    >>> fig = plot_ecg_strip(ecg, 360.0, ref_peaks=np.array([90, 450]), ref_symbols=["N", "V"],
    ...                      flagged_windows=[(2.0, 4.0)], title="demo")
    >>> fig.axes[0].get_title()
    'demo'
    """
    x = np.asarray(ecg, dtype=np.float64)
    if x.ndim > 1 and sum(d > 1 for d in x.shape) > 1:  # flattening would draw the leads one after another
        raise ValueError(f"ecg must be one lead (shape (n,)), got shape {x.shape}; pass e.g. ecg[:, 0]")
    x = x.reshape(-1)
    if fs <= 0 or duration_s <= 0:
        raise ValueError(f"fs and duration_s must be positive, got fs={fs!r}, duration_s={duration_s!r}")
    i0 = max(0, int(np.floor(start_s * fs)))
    i1 = min(x.size, int(np.ceil((start_s + duration_s) * fs)))
    seg = x[i0:i1]
    t = np.arange(i0, i1) / fs

    width = float(np.clip(duration_s * 1.6, 6.0, 24.0))
    fig = Figure(figsize=(width, 3.6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    # ECG paper: minor 0.04 s / 0.1 unit, major 0.2 s / 0.5 unit (only drawn at readable densities)
    if duration_s <= 30:
        ax.xaxis.set_major_locator(MultipleLocator(1.0))
        ax.xaxis.set_minor_locator(MultipleLocator(0.2))
    ax.grid(True, which="major", color="#f4a6a6", lw=0.8)
    ax.grid(True, which="minor", color="#fbdcdc", lw=0.4)
    ax.set_axisbelow(True)
    ax.plot(t, seg, color="black", lw=0.8, label="ECG")
    finite = seg[np.isfinite(seg)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    pad = 0.15 * (hi - lo if hi > lo else 1.0)
    ax.set_ylim(lo - pad, hi + 2.5 * pad)
    if unit == "mV" and duration_s <= 30 and hi - lo <= _PAPER_MAX_MV:  # else: µV or raw ADC values
        ax.yaxis.set_major_locator(MultipleLocator(0.5 if hi - lo <= 3 else 1.0))
        ax.yaxis.set_minor_locator(MultipleLocator(0.1))
    handles: list[Line2D | Patch] = [Line2D([], [], color="black", lw=0.8, label="ECG")]

    for a, b in flagged_windows or []:
        if b > start_s and a < start_s + duration_s:
            ax.axvspan(max(a, start_s), min(b, start_s + duration_s), color="tab:red", alpha=0.15, lw=0)
    if flagged_windows:
        handles.append(Patch(color="tab:red", alpha=0.15, label="flagged window"))
    if flagged_beats is not None:
        fb = np.asarray(flagged_beats, dtype=np.int64)
        fb = fb[(fb >= i0) & (fb < i1)]
        for s in fb:
            ax.axvspan(s / fs - 0.2, s / fs + 0.2, color="tab:purple", alpha=0.18, lw=0)
        handles.append(Patch(color="tab:purple", alpha=0.18, label="flagged beat"))

    if peaks is not None:
        p = np.asarray(peaks, dtype=np.int64)
        p = p[(p >= i0) & (p < i1)]
        ax.plot(p / fs, x[p], "v", color="tab:red", ms=6, label="detected R")
        handles.append(Line2D([], [], marker="v", color="tab:red", ls="", label="detected R"))
    if ref_peaks is not None:
        r = np.asarray(ref_peaks, dtype=np.int64)
        syms = list(ref_symbols) if ref_symbols is not None else ["|"] * r.size
        if len(syms) != r.size:
            raise ValueError(f"ref_symbols has {len(syms)} entries for {r.size} ref_peaks; pass one per beat")
        y_txt = hi + 1.2 * pad
        for s, sym in zip(r, syms, strict=True):
            if i0 <= s < i1:
                color = "tab:blue" if sym in _NORMAL_SYMBOLS or sym == "|" else "tab:orange"
                ax.text(s / fs, y_txt, sym, ha="center", va="bottom", color=color, fontsize=9, weight="bold")
                ax.axvline(s / fs, ymin=0.9, ymax=0.93, color=color, lw=1.0)
        handles.append(Line2D([], [], marker="$N$", color="tab:blue", ls="", label="reference beat"))

    ax.set_xlim(start_s, start_s + duration_s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(unit)
    if title:
        ax.set_title(title)
    ax.legend(
        handles=handles,
        loc="upper right",
        bbox_to_anchor=(1.0, -0.13),
        fontsize=7,
        ncol=len(handles),
        frameon=False,
    )
    fig.tight_layout()
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png")
    return fig
