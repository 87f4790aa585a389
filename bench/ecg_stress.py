"""Semi-synthetic PVC-rich ECG records built only from the real beats of one MIT-BIH record (constructed).

The label-free beat anomaly model (``medmm.anomaly``) scores every beat relative to its own record, which
assumes most beats are normal. MIT-BIH records outside ``mitdb_subset`` (208, 233, 200, 119, 106, 203)
carry 20-33 % ventricular beats, in bigeminy and trigeminy. This module builds records of a requested
ventricular (``V``) burden from one real record at a time, so that the pipeline can be stress-tested
on them. **These records are constructed**, not recordings: every sample is a real sample of the source
record (times a per-chunk gain close to 1, plus a slow level ramp), re-sequenced.

Construction (:func:`build_stress_record`):

* **Chunks of real signal.** An *event* chunk is an isolated PVC with the normal beat before it,
  ``[N_a, V]``, cut from ``SPLICE_S`` before ``N_a``'s R peak to ``SPLICE_S`` before the normal beat
  that follows the PVC. A *filler* chunk is a run of ``g`` consecutive normal beats cut the same way.
  Every cut lies ``SPLICE_S`` = 0.32 s before the R peak of a normal beat whose preceding RR is at
  least ``MIN_RR_S`` = 0.66 s - in diastole, after the previous T wave and before the P wave
  (checked on the median beats of 105, 108, 114 and 116).
* **Real RR intervals.** Because every cut is the same ``SPLICE_S`` before an R peak, the RR interval
  after each beat in the new record equals the one after that beat in the source record: each PVC
  keeps its real coupling interval (inside its chunk) and its real compensatory pause (across the
  cut after it); normal beats keep their real following RR.
* **Rhythm.** Burden ``p`` = share of ``V`` among the beats. Each event is preceded by a gap of
  filler beats: 50 % -> no filler (bigeminy: N V N V ...), 40 % -> none or one (bigeminy broken by
  occasional normal pairs, half the events each: the mixed bigeminy / trigeminy the MIT-BIH
  directory describes for PVC-rich records such as 119), 33 % -> one (trigeminy), 25 % -> 1-3
  (mean 2), 10 % -> 4-12 (mean 8); the gaps are drawn with the seed and then adjusted so the burden
  is exact. Fillers are taken in time order from the source record (normal beats that are not the
  ``N_a`` of an event), wrapping around at its end.
* **Reuse.** Each real PVC is used at most ``MAX_USES`` = 3 times (one event per pass; within a pass
  events run in time order, so copies of one PVC are a whole pass apart). Each chunk use is scaled by
  its own gain drawn from U(0.95, 1.05) (the beat-to-beat amplitude modulation of respiration), so
  no two copies are identical samples. Why 3: a PVC focus makes near-identical beats anyway (the
  model's look-alike timing relies on that), but many exact copies would hand it a perfectly tight
  group (too easy); no reuse would leave too few PVCs for bigeminy (108 has 17).
* **No steps.** At each cut the next chunk gets a linear offset ramp from the level difference
  (mean of +- 8 samples on each side) down to 0 at the chunk's end: the signal is continuous, the
  ramp is slow baseline wander (removed by the pipeline's baseline filter) and nothing accumulates.
* **Length.** Events = min(``MAX_USES`` x isolated PVCs, burden x the source record's beats), so a
  record is at most as long (in beats) as its source.

Labels (the source ``.atr`` symbols, ``N``/``V``) are used only to choose chunks and are written as
the new record's ``.atr`` for evaluation; the pipeline never reads them as model input.

>>> import numpy as np
>>> fs = 360.0
>>> r = np.arange(1, 200) * 288  # 0.8 s RR
>>> sym = ["V" if i % 20 == 10 else "N" for i in range(r.size)]
>>> r = r.copy(); r[np.array(sym) == "V"] -= 90  # PVCs 0.25 s early
>>> sig = np.zeros(int(r[-1] + fs)); sig[r] = 1.0
>>> rec = build_stress_record(sig, fs, r, sym, burden=0.5, seed=0)
>>> round(float(np.mean(np.array(rec.symbols) == "V")), 2)
0.5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = [
    "BURDENS",
    "MAX_USES",
    "MIN_RR_S",
    "SOURCE_RECORDS",
    "SPLICE_S",
    "StressRecord",
    "build_stress_record",
    "write_stress_set",
]

#: Source records of ``mitdb_subset`` with the most PVCs (41, 17, 43, 109).
SOURCE_RECORDS: tuple[str, ...] = ("105", "108", "114", "116")
#: Ventricular burdens of the stress set.
BURDENS: tuple[float, ...] = (0.10, 0.25, 1 / 3, 0.40, 0.50)
#: Every cut lies this long before the R peak of a normal beat (diastole, before the P wave).
SPLICE_S = 0.32
#: A cut is allowed only before a normal beat whose preceding RR is at least this long (T wave over).
MIN_RR_S = 0.66
#: Each real PVC is used at most this many times.
MAX_USES = 3
#: Gain of each chunk use: U(1 - GAIN_JITTER, 1 + GAIN_JITTER).
GAIN_JITTER = 0.05
#: Half-width (samples) of the level estimate on each side of a cut.
LEVEL_HALF = 8
#: Filler gaps (normal beats before each event): (low, high) per burden, mean = 1 / burden - 2.
GAPS: dict[str, tuple[int, int]] = {
    "0.10": (4, 12),
    "0.25": (1, 3),
    "0.33": (1, 1),
    "0.40": (0, 1),
    "0.50": (0, 0),
}


@dataclass
class StressRecord:
    """A constructed record: signal (physical units), R-peak samples and symbols of every beat, and the
    provenance of every beat (source sample, chunk index, chunk kind, use of the PVC, gain)."""

    signal: NDArray[np.float64]
    fs: float
    samples: NDArray[np.int64]
    symbols: list[str]
    provenance: pd.DataFrame
    junctions: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def burden(self) -> float:
        """Share of ``V`` among the beats."""
        return float(np.mean(np.asarray(self.symbols) == "V")) if self.symbols else 0.0


def _key(burden: float) -> str:
    return f"{burden:.2f}"


def _gaps(n_events: int, burden: float, rng: np.random.Generator) -> NDArray[np.int64]:
    """Filler beats before each event, drawn in the burden's range and adjusted to the exact total."""
    lo, hi = GAPS[_key(burden)]
    total = round(n_events * (1.0 / burden - 2.0))
    gaps = rng.integers(lo, hi + 1, n_events)
    while gaps.sum() != total:
        i = int(rng.integers(n_events))
        if gaps.sum() < total and gaps[i] < hi:
            gaps[i] += 1
        elif gaps.sum() > total and gaps[i] > lo:
            gaps[i] -= 1
    return gaps.astype(np.int64)


def _eligible(samples: NDArray[np.int64], symbols: NDArray[np.str_], fs: float) -> NDArray[np.bool_]:
    """Beats before which a cut may lie: normal, with a preceding RR of at least ``MIN_RR_S``."""
    rr_prev = np.r_[0.0, np.diff(samples) / fs]
    ok = (symbols == "N") & (rr_prev >= MIN_RR_S)
    ok &= samples - round(SPLICE_S * fs) - LEVEL_HALF > 0
    ok[0] = False
    return ok


def build_stress_record(
    signal: NDArray[np.floating],
    fs: float,
    samples: NDArray[np.integer],
    symbols: list[str],
    burden: float,
    seed: int = 0,
) -> StressRecord:
    """Re-sequence one real record's beats into a record of ``burden`` ventricular beats (module doc).

    ``signal`` is the lead in physical units, ``samples``/``symbols`` the reference beats (``N``/``V``;
    any other symbol counts as neither and its beat is never used). ``burden`` is one of
    :data:`BURDENS`. Deterministic for a seed.
    """
    if _key(burden) not in GAPS:
        raise ValueError(f"burden must be one of {[round(b, 3) for b in BURDENS]}, got {burden}")
    x = np.asarray(signal, dtype=np.float64)
    r = np.asarray(samples, dtype=np.int64)
    sym = np.asarray(symbols)
    cut = round(SPLICE_S * fs)
    ok = _eligible(r, sym, fs)
    n = r.size
    # isolated PVCs whose preceding normal beat and following beat allow cuts
    events = [i for i in range(1, n - 1) if sym[i] == "V" and ok[i - 1] and ok[i + 1]]
    if not events:
        raise ValueError("the source record has no isolated PVC between two cuttable normal beats")
    n_events = min(MAX_USES * len(events), round(burden * n))
    order = [events[k % len(events)] for k in range(n_events)]  # pass after pass, time order
    uses = [k // len(events) for k in range(n_events)]
    rng = np.random.default_rng(seed)
    gaps = _gaps(n_events, burden, rng)
    taken = np.zeros(n, dtype=bool)
    taken[[i - 1 for i in events]] = True  # N_a of events are never fillers
    filler_ok = (sym == "N") & ~taken
    pointer = 0

    def next_filler(g: int) -> int:
        nonlocal pointer
        for _ in range(2 * n):
            k = pointer
            pointer = (pointer + 1) % n
            if k + g < n and ok[k] and ok[k + g] and filler_ok[k : k + g].all():
                pointer = (k + g) % n
                return k
        raise ValueError(f"no run of {g} cuttable normal beats in the source record")

    chunks: list[tuple[int, int, str, int]] = []  # (first beat, end beat (exclusive), kind, use)
    for ev, use, g in zip(order, uses, gaps, strict=True):
        if g > 0:
            k = next_filler(int(g))
            chunks.append((k, k + int(g), "filler", 0))
        chunks.append((ev - 1, ev + 1, "event", use))

    pieces: list[NDArray[np.float64]] = []
    out_samples: list[int] = []
    out_symbols: list[str] = []
    prov: list[dict[str, object]] = []
    junctions: list[int] = []
    length = 0
    prev_end_level: float | None = None
    for c, (first, end, kind, use) in enumerate(chunks):
        a, b = int(r[first] - cut), int(r[end] - cut)
        gain = float(rng.uniform(1 - GAIN_JITTER, 1 + GAIN_JITTER))
        seg = gain * x[a:b]
        if prev_end_level is not None:
            delta = prev_end_level - gain * float(np.mean(x[a - LEVEL_HALF : a + LEVEL_HALF]))
            seg = seg + delta * (1.0 - np.arange(seg.size) / seg.size)
            junctions.append(length)
        prev_end_level = gain * float(np.mean(x[b - LEVEL_HALF : b + LEVEL_HALF]))
        for i in range(first, end):
            out_samples.append(length + int(r[i] - a))
            out_symbols.append(str(sym[i]))
            prov.append(
                {"sample": out_samples[-1], "symbol": str(sym[i]), "source_sample": int(r[i])}
                | {"chunk": c, "kind": kind, "use": use, "gain": gain, "chunk_start": length}
                | {"source_start": a}
            )
        pieces.append(seg)
        length += seg.size
    return StressRecord(
        np.concatenate(pieces),
        float(fs),
        np.asarray(out_samples, dtype=np.int64),
        out_symbols,
        pd.DataFrame(prov),
        np.asarray(junctions, dtype=np.int64),
    )


def write_stress_set(
    source_dir: Path,
    out_dir: Path,
    records: tuple[str, ...] = SOURCE_RECORDS,
    burdens: tuple[float, ...] = BURDENS,
    seed: int = 0,
) -> pd.DataFrame:
    """Build every (record, burden) stress record and write it as WFDB (``.hea``/``.dat``/``.atr``).

    Records are named ``<source>_v<percent>`` (e.g. ``116_v50``), lead 0 only, fmt 16 with gain 200 and
    baseline 1024 like ``mitdb_subset``; each record's provenance goes to
    ``<out_dir>_provenance/<name>.csv``, a sibling folder of ``out_dir`` (so the pipeline, which reads
    ``out_dir``, does not see it). Returns one summary row per record (beats, V beats, burden, distinct
    PVCs, minutes, junctions).
    """
    import wfdb

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prov_dir = out_dir.parent / f"{out_dir.name}_provenance"
    prov_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for rec_name in records:
        src = wfdb.rdrecord(str(Path(source_dir) / rec_name))
        ann = wfdb.rdann(str(Path(source_dir) / rec_name), "atr")
        sig = np.asarray(src.p_signal[:, 0], dtype=np.float64)
        for burden in burdens:
            rec = build_stress_record(sig, float(src.fs), ann.sample, list(ann.symbol), burden, seed)
            name = f"{rec_name}_v{round(100 * burden):02d}"
            wfdb.wrsamp(
                name,
                fs=rec.fs,
                units=[src.units[0]],
                sig_name=[src.sig_name[0]],
                p_signal=rec.signal[:, None],
                fmt=["16"],
                adc_gain=[200.0],
                baseline=[1024],
                write_dir=str(out_dir),
                comments=[f"constructed by medmm bench/ecg_stress.py from MIT-BIH {rec_name}, seed {seed}"],
            )
            wfdb.wrann(name, "atr", rec.samples, np.asarray(rec.symbols), write_dir=str(out_dir))
            rec.provenance.to_csv(prov_dir / f"{name}.csv", index=False)
            v = rec.provenance[rec.provenance["symbol"] == "V"]
            rows.append(
                {"record": name, "source": rec_name, "target_burden": round(burden, 3)}
                | {"beats": len(rec.symbols), "v_beats": len(v), "burden": round(rec.burden, 4)}
                | {"distinct_pvcs": int(v["source_sample"].nunique())}
                | {"minutes": round(rec.signal.size / rec.fs / 60.0, 1), "junctions": len(rec.junctions)}
            )
    return pd.DataFrame(rows)
