"""medmm.anomaly: label-free anomaly detection on ECG beats (conv autoencoder embedding + per-record rules).

Plain-function API (what the CLI and the fusion models reuse): :func:`beat_inputs` (features of one
lead), :func:`train_beat_model`, :func:`score_beats` / :func:`score_inputs`, :func:`save_model` /
:func:`load_model`, :func:`leave_one_record_out`; per window :func:`score_windows` / :func:`assign_beats`
(``docs/anomaly-windows.md``). See ``docs/anomaly.md``. Names are imported lazily so
``medmm --help`` does not import torch.

>>> from medmm.anomaly import train_beat_model
>>> train_beat_model.__module__
'medmm.anomaly.train'
"""

from __future__ import annotations

from medmm._lazy import lazy_exports

__all__ = [
    "AnomalyModel",
    "BeatInputs",
    "WindowSpec",
    "assign_beats",
    "beat_inputs",
    "leave_one_record_out",
    "load_model",
    "load_signals_run",
    "plot_top_windows",
    "run_inputs",
    "save_model",
    "score_beats",
    "score_inputs",
    "score_windows",
    "train_beat_model",
]

_WHERE = {
    "AnomalyModel": "medmm.anomaly.model",
    "BeatInputs": "medmm.anomaly.features",
    "WindowSpec": "medmm.anomaly.features",
    "assign_beats": "medmm.anomaly.windows",
    "beat_inputs": "medmm.anomaly.features",
    "leave_one_record_out": "medmm.anomaly.evaluate",
    "load_model": "medmm.anomaly.model",
    "load_signals_run": "medmm.anomaly.runs",
    "plot_top_windows": "medmm.anomaly.window_plot",
    "run_inputs": "medmm.anomaly.runs",
    "save_model": "medmm.anomaly.model",
    "score_beats": "medmm.anomaly.score",
    "score_inputs": "medmm.anomaly.score",
    "score_windows": "medmm.anomaly.windows",
    "train_beat_model": "medmm.anomaly.train",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
