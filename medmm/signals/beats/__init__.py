"""Beat-level ECG analysis: R peaks, beat templates and feature tables, HRV, reference matching.

All functions take one lead as a NumPy array plus its sampling rate; nothing here reads files.
See ``docs/signals-beats.md`` for the methods and their accuracy on MIT-BIH.
"""

from medmm.signals.beats.evaluate import MatchResult, match_reference
from medmm.signals.beats.features import BEAT_COLUMNS, beat_table, beat_table_from_templates, median_beat
from medmm.signals.beats.hrv import hrv_summary, nn_mask
from medmm.signals.beats.rpeaks import detect_rpeaks
from medmm.signals.beats.segment import TEMPLATE_FS, beat_templates, template_center, template_times
from medmm.signals.beats.synth import simulate_ecg

__all__ = [
    "BEAT_COLUMNS",
    "TEMPLATE_FS",
    "MatchResult",
    "beat_table",
    "beat_table_from_templates",
    "beat_templates",
    "detect_rpeaks",
    "hrv_summary",
    "match_reference",
    "median_beat",
    "nn_mask",
    "simulate_ecg",
    "template_center",
    "template_times",
]
