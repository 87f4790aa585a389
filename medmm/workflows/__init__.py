"""Dask wiring only: clusters, task maps with progress. No domain logic lives here.

Names are imported lazily (importing a submodule such as ``medmm.workflows.forkserver`` does not
import the cluster module and its dependencies first).

>>> from medmm.workflows import dask_client
>>> dask_client.__module__
'medmm.workflows.cluster'
"""

from __future__ import annotations

from medmm._lazy import lazy_exports

__all__ = ["ClusterError", "TaskFailure", "dask_client", "run_tasks"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"ClusterError": "medmm.workflows.external"}
    | dict.fromkeys(["TaskFailure", "dask_client", "run_tasks"], "medmm.workflows.cluster"),
)
