"""``medmm demo``: every stage on sample data that ships with the packages or is generated here.

:func:`~medmm.demo.run.run_full_demo` builds the samples, runs imaging ingest, report parsing, the
signals stage, the label-free beat anomaly model, alignment and a small fused model into one run
directory, and renders the results people look at (volume slice, highlighted report, ECG strip with
flagged beats). Import from the submodules (``medmm.demo.run``, ``medmm.demo.samples``); this package
imports nothing heavy so the CLI stays fast.
"""

__all__: list[str] = []
