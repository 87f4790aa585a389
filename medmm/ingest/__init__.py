"""medmm.ingest: walk and sniff an archive, scan headers and convert on Dask, manifest and resumption.

``ingest_archive`` is the stage; ``build_sample_archive`` / ``run_demo`` make and ingest the demo
archive. See ``docs/ingest.md``. Names are imported lazily so ``medmm --help`` stays instant.

>>> from medmm.ingest import sniff_file
>>> sniff_file.__module__
'medmm.ingest.sniff'
"""

from __future__ import annotations

from medmm._lazy import lazy_exports

__all__ = [
    "IngestManifestRow",
    "IngestResult",
    "build_sample_archive",
    "ingest_archive",
    "replicate_series",
    "run_demo",
    "sniff_file",
    "walk_archive",
]

_WHERE = {
    "IngestManifestRow": "medmm.ingest.records",
    "IngestResult": "medmm.ingest.pipeline",
    "ingest_archive": "medmm.ingest.pipeline",
    "build_sample_archive": "medmm.ingest.sample",
    "replicate_series": "medmm.ingest.sample",
    "run_demo": "medmm.ingest.sample",
    "sniff_file": "medmm.ingest.sniff",
    "walk_archive": "medmm.ingest.discover",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
