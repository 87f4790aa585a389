"""Long single-rate WFDB / EDF records processed in time chunks, so a task's memory follows the chunk length.

The chunks are those of beat detection (:func:`medmm.signals.align.chunk_spans` with ``chunk_s`` and
``overlap_s``): each is read with ``wfdb.rdrecord(sampfrom=, sampto=)`` (WFDB, multi-segment too) or
pyedflib's ``readSignal(i, start, n)`` (EDF/EDF+/BDF whose signal channels share one rate) together with
its context, from a sample that is a multiple of the resampling ``down`` factor so the polyphase filter
runs on the same phase as on the whole record. Every chunk contributes its *core*: clipping / flat-line
masks at the native rate, the resampled samples, the R peaks, and the beat templates of those peaks.
Windows fill as their samples arrive and are written row by row
(:class:`~medmm.signals.store.WindowWriter`); after the last chunk the peaks are merged as
:func:`~medmm.signals.ecg.detect_chunked` merges them, and the beat table is made from the collected
templates (its median beat needs all of them).

The outputs equal those of the whole-record path (``tests/signals/test_chunked.py`` checks it on a
MIT-BIH record, ``tests/signals/test_chunked_edf.py`` on an EDF+ file): same R peaks, windows and masks,
beat features within float tolerance (the band-pass of the templates starts 10 s before a chunk's core
instead of at the record start). Records the scheme cannot cover exactly (multi-rate WFDB or EDF, a
resampling ``down`` factor too large for the context, shorter than two chunks) are read whole.
"""

from __future__ import annotations

import math
import tempfile
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medmm.signals.align import anchor_window, chunk_spans, tile_windows, time_to_sample
from medmm.signals.beats import beat_table_from_templates
from medmm.signals.ecg import dedupe_peaks, drop_masked, finish_beats, gap_runs, min_gap, unbridge_rr
from medmm.signals.harmonize import (
    finite_runs,
    flat_mask,
    normalize_units,
    rational_ratio,
    resample,
    saturation_mask,
)
from medmm.signals.readers import LoadedRecord
from medmm.signals.readers._base import Channel
from medmm.signals.readers.edf import read_edf_meta, read_edf_span
from medmm.signals.readers.wfdb import read_wfdb_meta, read_wfdb_span
from medmm.signals.records import WindowRow
from medmm.signals.store import WindowWriter

__all__ = ["ChunkPlan", "chunk_plan", "process_chunked"]

_MASKS = ("missing", "flat", "sat")


@dataclass
class ChunkPlan:
    """A record to process in chunks: its header-only record and the chunk spans (native samples)."""

    root: Path
    meta: LoadedRecord
    spans: list[Any]
    down: int
    source: str = ""  # the file named in errors (``100.hea``, ``night.edf``)
    read: Callable[[int, int], list[NDArray[np.float64]]] | None = None  # samples [start, stop)


def _filter_reach(up: int, down: int) -> int:
    """Input samples a ``resample_poly(up, down)`` output depends on, each side (plus the phase step)."""
    return math.ceil(10 * max(up, down) / up) + down + 2


def _sizes(fs: float, settings: Any) -> tuple[int, int, int] | None:
    """(chunk, overlap, down) in native samples when chunking is exact at ``fs``, else ``None``."""
    if not fs > settings.trend_max_fs:
        return None
    chunk, overlap = max(1, round(settings.chunk_s * fs)), round(settings.overlap_s * fs)
    up, down = rational_ratio(fs, settings.rate)
    if overlap < 2 * _filter_reach(up, down) or chunk < overlap:
        return None
    return chunk, overlap, down


def chunk_plan(
    root: Path, record: str, annotation_extensions: list[str] | None, settings: Any, *, kind: str = "wfdb"
) -> ChunkPlan | None:
    """The chunks of ``record`` when it is long enough and chunking is exact for it, else ``None``.

    ``kind`` is ``"wfdb"`` (``record`` is the record name) or ``"edf"`` (``record`` is the EDF/BDF
    file's path under ``root``; single-rate files only). Other kinds are read whole.

    >>> from medmm.datasets import shared_data_dir
    >>> from medmm.signals.process import Settings
    >>> root = shared_data_dir()
    >>> plan = chunk_plan(root / "signals/mitdb_subset", "100", None, Settings(chunk_s=120)) if root else None
    >>> plan is None or len(plan.spans) == 16  # 30 min at 120 s chunks (None without the shared data)
    True
    """
    if not settings.chunk_records or settings.overlap_s < 1.0:
        return None
    if kind == "edf":
        return _edf_plan(Path(root), record, settings)
    if kind != "wfdb":
        return None
    from medmm.signals.readers.wfdb import _header

    h = _header(Path(root) / f"{record}.hea", f"{record}.hea")
    sizes = _sizes(float(h.fs or 0), settings)
    if sizes is None:
        return None
    chunk, overlap, down = sizes
    meta = read_wfdb_meta(Path(root), record, annotation_extensions, min_samples=2 * chunk + 1)
    if meta is None:
        return None
    spans = chunk_spans(meta.n_samples, chunk, overlap)
    read = partial(read_wfdb_span, Path(root), record, multi=meta.format == "wfdb-multisegment")
    return ChunkPlan(Path(root), meta, spans, down, f"{record}.hea", read)


def _edf_plan(root: Path, rel: str, settings: Any) -> ChunkPlan | None:
    meta = read_edf_meta(root, rel)
    if meta is None:
        return None
    sizes = _sizes(meta.channels[0].fs, settings)
    if sizes is None or meta.n_samples < 2 * sizes[0] + 1:
        return None
    chunk, overlap, down = sizes
    spans = chunk_spans(meta.n_samples, chunk, overlap)
    return ChunkPlan(root, meta, spans, down, rel, partial(read_edf_span, root, rel))


@dataclass
class _Win:
    """A window being filled: output span, native span for the masks, and destination."""

    index: int
    out: tuple[int, int]  # output samples [a, b) taken from the signal
    pad_before: int
    native: tuple[int, int]
    buf: NDArray[np.float64]
    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_MASKS, 0.0))
    label: str = ""
    anchor_s: float | None = None


class _Stream:
    """One wave channel followed chunk by chunk."""

    def __init__(
        self,
        ctx: dict[str, Any],
        ch: Channel,
        name: str,
        n: int,
        span: float,
        settings: Any,
        run_dir: Path,
        res: Any,
    ) -> None:
        self.ch, self.name, self.n, self.span, self.settings, self.res = ch, name, n, span, settings, res
        self.limits = ch.adc_limits  # None: set to the record's observed extremes before the first chunk
        self.runs = _Runs()  # the record's finite runs, set before the first chunk
        self.up, self.down = rational_ratio(ch.fs, settings.rate)
        self.fs_out = ch.fs * self.up / self.down
        self.ctx = {**ctx, "fs_out": self.fs_out, "kind": ch.kind}
        self.units = normalize_units(np.zeros(0), ch.units, ch.kind)[1]
        self.n_out = int(np.ceil(n * self.up / self.down))
        wlen = max(1, round(settings.window_s * self.fs_out))
        self.wlen, self.starts = wlen, tile_windows(self.n_out, wlen, wlen)
        self.writer = (
            WindowWriter(run_dir, res.record, name, len(self.starts), wlen) if self.starts.size else None
        )
        self.cur: _Win | None = self._tiled(0) if self.starts.size else None
        self.rows: list[WindowRow] = []
        self.anchored: list[tuple[_Win, dict[str, Any]]] = []
        before, after = round(settings.before_s * self.fs_out), round(settings.after_s * self.fs_out)
        for label, t in ctx["anchors"]:
            sp = anchor_window(int(time_to_sample(t, self.fs_out)), before, after, self.n_out)
            if sp.stop <= sp.start:
                continue
            w = _Win(
                len(self.anchored),
                (sp.start, sp.stop),
                sp.pad_before,
                self._native(sp.start, sp.stop),
                np.full(sp.pad_before + sp.stop - sp.start + sp.pad_after, np.nan),
                label=label,
                anchor_s=float(t),
            )
            self.anchored.append((w, {}))
        self.totals = dict.fromkeys(_MASKS, 0.0)
        self.beats = ch.kind == "ecg" and ch.fs >= settings.min_beat_fs
        self.peaks: list[NDArray[np.int64]] = []
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        self.tpl_file: Any = tempfile.TemporaryFile(dir=run_dir) if self.beats else None  # noqa: SIM115
        self.tpl_width = 0
        self.any_finite = False
        self.gap_starts: list[NDArray[np.int64]] = []
        self.gap_stops: list[NDArray[np.int64]] = []

    def _native(self, s: int, e: int) -> tuple[int, int]:
        fs, fo = self.ch.fs, self.fs_out
        return int(np.floor(s * fs / fo)), int(np.ceil(e * fs / fo))

    def _tiled(self, i: int) -> _Win:
        s = int(self.starts[i])
        return _Win(i, (s, s + self.wlen), 0, self._native(s, s + self.wlen), np.full(self.wlen, np.nan))

    def feed(self, x_raw: NDArray[np.float64], read0: int, span: Any) -> None:
        """Take one chunk: ``x_raw`` holds native samples ``[read0, ...)`` covering ``span``'s read range."""
        from medmm.signals.beats import beat_templates, detect_rpeaks

        x = normalize_units(x_raw, self.ch.units, self.ch.kind)[0]
        ks, ke = span.keep_start, span.keep_stop
        core = slice(ks - read0, ke - read0)
        masks = {
            "missing": ~np.isfinite(x),
            "flat": flat_mask(x, self.ch.fs, span=self.span),
            "sat": saturation_mask(x, self.limits),
        }
        for k in _MASKS:
            self.totals[k] += float(masks[k][core].sum())
        if self.beats:  # stretches without signal, for RR intervals that must not bridge them
            a, b = gap_runs((masks["missing"] | masks["flat"])[core], ks)
            self.gap_starts.append(a)
            self.gap_stops.append(b)
        self.any_finite |= bool(np.isfinite(x[core]).any())
        y, _ = resample(self.runs.as_whole(x, read0), self.ch.fs, self.settings.rate)
        o0 = read0 * self.up // self.down
        os_, oe = -(-ks * self.up // self.down), -(-ke * self.up // self.down)
        last = ke >= self.n

        def fill(w: _Win) -> bool:
            a, b = max(w.out[0], os_), min(w.out[1], oe)
            if b > a:
                j = w.pad_before + a - w.out[0]
                w.buf[j : j + b - a] = y[a - o0 : b - o0]
            na, nb = max(w.native[0], ks), min(w.native[1], ke)
            if nb > na:
                for k in _MASKS:
                    w.counts[k] += float(masks[k][na - read0 : nb - read0].sum())
            return last or (w.out[1] <= oe and w.native[1] <= ke)

        for w, row in self.anchored:
            if not row and fill(w):
                self._close(w)
        while self.cur is not None and fill(self.cur):
            self._close(self.cur)
        if self.beats:
            seg = x[span.read_start - read0 : span.read_stop - read0]
            p = detect_rpeaks(seg, self.ch.fs, recover_small_beats=self.settings.recover_small_beats)
            p = p + span.read_start
            p = drop_masked(p[(p >= ks) & (p < ke)].astype(np.int64), masks["flat"], read0)
            self.peaks.append(p)
            tpl = _templates(beat_templates, x, self.ch.fs, p - read0)
            self.tpl_width = tpl.shape[1]
            self.tpl_file.write(np.ascontiguousarray(tpl, dtype=np.float64).tobytes())

    def _close(self, w: _Win) -> None:
        from medmm.signals.process import _abs, window_quality_row

        n = max(w.native[1] - w.native[0], 1)
        frac = {k: w.counts[k] / n if w.native[1] > w.native[0] else 0.0 for k in _MASKS}
        pad = 0.0 if not w.label else (w.buf.size - (w.out[1] - w.out[0])) / max(1, w.buf.size)
        q = window_quality_row(self.ctx, w.buf, frac, pad)
        t0 = (w.out[0] - w.pad_before) / self.fs_out
        row = dict(
            record=self.res.record,
            patient_id=self.ctx["patient_id"],
            channel=self.name,
            fs=self.fs_out,
            window=w.index,
            row=w.index,
            start_sample=w.out[0],
            stop_sample=w.out[1],
            pad_before=w.pad_before,
            pad_after=w.buf.size - w.pad_before - (w.out[1] - w.out[0]),
            start_s=t0,
            start_abs_s=_abs(self.ctx, t0),
            anchor=w.label,
            anchor_s=w.anchor_s,
            **q,
        )
        if w.label:
            self.anchored[w.index] = (w, row)
            return
        assert self.writer is not None
        self.writer.write(w.buf)
        self.rows.append(WindowRow(**row, path=self.writer.rel))
        self.cur = self._tiled(w.index + 1) if w.index + 1 < len(self.starts) else None

    def finish(self, run_dir: Path, beats: list, feats: list) -> None:
        """Write the arrays, add window, signal, beat and feature rows to the record's result."""
        from medmm.signals.process import wave_outputs
        from medmm.signals.store import write_windows

        if self.writer is not None:
            self.writer.close()
        rows = list(self.rows)
        if self.anchored:
            rel = write_windows(
                run_dir,
                self.res.record,
                self.name,
                np.stack([w.buf for w, _ in self.anchored]),
                kind="anchored",
            )
            rows += [WindowRow(**r, path=rel) for _, r in self.anchored]
        self.res.windows += rows
        good = [r.quality for r in self.rows]
        out = None
        if self.beats and self.any_finite:
            p_all = np.concatenate(self.peaks)
            peaks = dedupe_peaks(self.peaks, self.ch.fs)
            self.tpl_file.flush()
            shape = (p_all.size, self.tpl_width)
            tpl_all = (
                np.memmap(self.tpl_file, np.float64, "r", shape=shape) if p_all.size else np.zeros(shape)
            )
            kept = np.searchsorted(p_all, peaks)
            tpl = tpl_all if kept.size == p_all.size else _Rows(tpl_all, kept)
            table = beat_table_from_templates(peaks, self.ch.fs, tpl)  # type: ignore[arg-type]
            del tpl, tpl_all
            starts = np.concatenate(self.gap_starts) if self.gap_starts else np.zeros(0, np.int64)
            stops = np.concatenate(self.gap_stops) if self.gap_stops else np.zeros(0, np.int64)
            table = unbridge_rr(table, peaks, starts, stops, min_len=min_gap(self.ch.fs))
            out = finish_beats(table, peaks, self.ch.fs, self.ctx["ref"])
        if self.tpl_file is not None:
            self.tpl_file.close()
        n = self.n
        fracs = {k: self.totals[k] / n for k in _MASKS}
        wave_outputs(
            self.ctx,
            self.ch,
            self.name,
            self.units,
            self.fs_out,
            n,
            fracs,
            len(self.starts),
            good,
            out,
            self.settings,
            self.res,
            beats,
            feats,
        )


class _Runs:
    """A channel's maximal runs of finite samples over the whole record, with their end values.

    ``resample`` pads each finite run with ``resample_poly(padtype="line")``: the padding before a run
    follows the line through its first and last samples. A chunk holds only part of a run that goes on
    past its read range, so :meth:`as_whole` moves the chunk's cut-off end sample (in the context, out
    of the core's filter reach) onto the whole run's line: the padding at the run's true start or end,
    inside the core, is then the whole-record padding (to rounding).
    """

    def __init__(self) -> None:
        self.start: list[int] = []
        self.stop: list[int] = []
        self.first: list[float] = []
        self.last: list[float] = []

    def add(self, x: NDArray[np.float64], at: int) -> None:
        """Take the next span ``x`` (samples from ``at``, following the previous span)."""
        for a, b in finite_runs(x):
            if self.stop and self.stop[-1] == at + a:  # the run goes on from the previous span
                self.stop[-1], self.last[-1] = at + b, float(x[b - 1])
                continue
            self.start.append(at + a)
            self.stop.append(at + b)
            self.first.append(float(x[a]))
            self.last.append(float(x[b - 1]))

    def as_whole(self, x: NDArray[np.float64], read0: int) -> NDArray[np.float64]:
        """``x`` (samples from ``read0``) with each run cut off at one end moved onto its whole line."""
        out = x
        for a, b in finite_runs(x):
            k = bisect_right(self.start, read0 + a) - 1
            if k < 0:
                continue
            ga, gb = self.start[k], self.stop[k]
            cut_left, cut_right = ga < read0 + a, gb > read0 + b
            if cut_left == cut_right or gb - ga < 2:
                continue
            slope = (self.last[k] - self.first[k]) / (gb - 1 - ga)
            out = out.copy() if out is x else out
            if cut_right:
                out[b - 1] = out[a] + slope * (b - 1 - a)
            else:
                out[a] = out[b - 1] - slope * (b - 1 - a)
        return out


class _Rows:
    """Rows ``index`` of a (memory-mapped) array, sliced like an array (rows, and all rows by columns)."""

    def __init__(self, arr: Any, index: NDArray[np.int64]) -> None:
        self.arr, self.index, self.shape = arr, index, (index.size, arr.shape[1])

    def __getitem__(self, key: Any) -> NDArray[np.float64]:
        if isinstance(key, tuple):
            rows, cols = key
            return np.asarray(self.arr[:, cols])[self.index[rows]]
        return np.asarray(self.arr[self.index[key]])


def _templates(fn: Any, x: NDArray[np.float64], fs: float, p: NDArray[np.int64]) -> NDArray[np.float64]:
    from medmm.signals.beats.features import _AFTER_S, _BEFORE_S

    return np.asarray(fn(x, fs, p, _BEFORE_S, _AFTER_S))


def process_chunked(
    plan: ChunkPlan,
    ctx: dict[str, Any],
    names: list[str],
    settings: Any,
    run_dir: Path,
    res: Any,
    beats: list,
    feats: list,
) -> None:
    """Run every wave channel of ``plan``'s record chunk by chunk (see module doc); rows go into ``res``."""
    meta, n = plan.meta, plan.meta.n_samples
    read = plan.read or partial(read_wfdb_span, plan.root, meta.record)
    lo = np.full(len(meta.channels), np.inf)
    hi = np.full(len(meta.channels), -np.inf)
    runs = [_Runs() for _ in meta.channels]
    for sp in plan.spans:  # first pass: value ranges (flat-line tolerance, saturation), finite runs
        for i, x in enumerate(read(sp.keep_start, sp.keep_stop)):
            x = normalize_units(x, meta.channels[i].units, meta.channels[i].kind)[0]
            runs[i].add(x, sp.keep_start)
            f = x[np.isfinite(x)]
            if f.size:
                lo[i], hi[i] = min(lo[i], f.min()), max(hi[i], f.max())
    ranges = [float(b - a) if np.isfinite(b) else 0.0 for a, b in zip(lo, hi, strict=True)]
    streams = [
        _Stream(ctx, ch, name, n, r, settings, run_dir, res)
        for ch, name, r in zip(meta.channels, names, ranges, strict=False)
    ]
    for s, a, b, r in zip(streams, lo, hi, runs, strict=False):
        if s.limits is None:  # saturation at the observed extremes of the whole record, as read whole
            s.limits = (float(a), float(b))
        s.runs = r
    try:
        for sp in plan.spans:
            read0 = (sp.read_start // plan.down) * plan.down
            xs = read(read0, sp.read_stop)
            for s, x in zip(streams, xs, strict=False):
                s.feed(x, read0, sp)
    except BaseException:
        for s in streams:
            if s.writer is not None:
                s.writer.abort()
        raise
    if not any(s.any_finite for s in streams) and not meta.events:
        from medmm.signals.errors import EmptyRecordError

        for s in streams:
            if s.writer is not None:
                s.writer.abort()
        raise EmptyRecordError(
            plan.source or f"{meta.record}.hea",
            "every sample of every channel is missing (NaN)",
            "check the acquisition export",
        )
    for s in streams:
        s.finish(run_dir, beats, feats)
        res.n_samples += n
