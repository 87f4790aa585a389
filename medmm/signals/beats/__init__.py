"""Beat-level ECG analysis: R peaks, beat tables and templates, HRV, reference matching."""

from medmm.signals.beats.evaluate import MatchResult, match_reference
from medmm.signals.beats.rpeaks import detect_rpeaks

__all__ = ["MatchResult", "detect_rpeaks", "match_reference"]
