"""``medmm share``: a de-identified copy of a run directory for collaborators outside the site.

See ``docs/share.md``. :func:`share_run` writes the share; :mod:`medmm.share.policy` is the allow-list
of artifacts and column policies; :func:`find_source_names` is the self-check run on every share.
Names are imported lazily, so ``medmm --help`` (which imports :mod:`medmm.share.cli`) imports none of
the package's modules.
"""

from __future__ import annotations

from medmm._lazy import lazy_exports

__all__ = [
    "REPORT_NAME",
    "TABLES",
    "NameMatcher",
    "Policy",
    "ShareLeakError",
    "SourceNames",
    "find_source_names",
    "share_run",
]

_WHERE = {
    "REPORT_NAME": "medmm.share.share",
    "TABLES": "medmm.share.policy",
    "NameMatcher": "medmm.share.check",
    "Policy": "medmm.share.policy",
    "ShareLeakError": "medmm.share.share",
    "SourceNames": "medmm.share.names",
    "find_source_names": "medmm.share.check",
    "share_run": "medmm.share.share",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
