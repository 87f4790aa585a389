"""Dask wiring only: clusters, task maps with progress. No domain logic lives here."""

from medmm.workflows.cluster import TaskFailure, dask_client, run_tasks

__all__ = ["TaskFailure", "dask_client", "run_tasks"]
