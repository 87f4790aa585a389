"""``medmm share``: a de-identified copy of a run directory for collaborators outside the site.

See ``docs/share.md``. :func:`share_run` writes the share; :mod:`medmm.share.policy` is the allow-list
of artifacts and column policies; :func:`find_source_names` is the self-check run on every share.
"""

from medmm.share.check import NameMatcher, find_source_names
from medmm.share.names import SourceNames
from medmm.share.policy import TABLES, Policy
from medmm.share.share import REPORT_NAME, ShareLeakError, share_run

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
