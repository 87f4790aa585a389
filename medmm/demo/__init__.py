"""``medmm demo``: every stage on sample data that ships with the packages or is generated here.

:func:`run_full_demo` builds the samples, runs imaging ingest, report parsing, the signals stage and
the label-free beat anomaly model into one run directory, and renders the results people look at
(volume slices, a highlighted report, an ECG strip with flagged beats).
"""

from medmm.demo.run import run_full_demo
from medmm.demo.samples import write_sample_ecg, write_sample_reports

__all__ = ["run_full_demo", "write_sample_ecg", "write_sample_reports"]
