"""Typed workflow files (``workflows/*.yaml``): which stages run, on what input, with which settings.

A workflow is data, checked against ``schemas/workflow.schema.json`` (generated from
:class:`WorkflowConfig`); no expressions, no code. Relative paths are resolved against the folder of
the YAML file, so a workflow can be copied next to an archive and edited.

>>> cfg = WorkflowConfig.model_validate(
...     {"name": "demo", "run_dir": "runs/x", "stages": [{"stage": "ingest", "input": "archive"}]}
... )
>>> cfg.stages[0].stage.value
'ingest'
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medmm.errors import ConfigError

__all__ = ["SCHEMAS", "ClusterConfig", "StageName", "StageStep", "WorkflowConfig", "load_workflow"]


class StageName(StrEnum):
    """Stages a workflow can run, in data-flow order."""

    ingest = "ingest"
    reports = "reports"
    signals = "signals"
    anomaly = "anomaly"
    align = "align"
    predict = "predict"


class ClusterConfig(BaseModel):
    """Where tasks run: a local cluster of ``workers`` processes, or an existing ``scheduler``."""

    model_config = ConfigDict(extra="forbid")
    workers: int | None = Field(default=None, ge=1, description="local worker processes")
    scheduler: str | None = Field(default=None, description="address of an existing Dask scheduler")

    @model_validator(mode="after")
    def _one_of(self) -> ClusterConfig:
        if self.workers and self.scheduler:
            raise ValueError(
                "give `workers` (a local cluster) or `scheduler` (an existing cluster, which has its own "
                "workers), not both"
            )
        return self


class StageStep(BaseModel):
    """One stage of a workflow: its input (file or folder; none for stages reading the run dir)."""

    model_config = ConfigDict(extra="forbid")
    stage: StageName
    input: str | None = Field(default=None, description="input path; relative to the workflow file")
    options: dict[str, Any] = Field(default_factory=dict, description="stage options (as on the CLI)")


class WorkflowConfig(BaseModel):
    """A whole workflow: run directory, cluster, site key, and ordered stages."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    run_dir: str
    key_file: str | None = Field(default=None, description="site key file; else $MEDMM_KEY_FILE")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    strict: bool = Field(default=False, description="exit non-zero when any input is quarantined")
    stages: list[StageStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _stages_need_inputs(self) -> WorkflowConfig:
        for step in self.stages:
            if step.stage in {StageName.ingest, StageName.reports, StageName.signals} and not step.input:
                raise ValueError(f"stage '{step.stage.value}' needs an `input` path")
        return self


def load_workflow(path: Path) -> tuple[WorkflowConfig, Path]:
    """Read and validate a workflow YAML; returns the config and the folder relative paths use.

    Raises :class:`~medmm.errors.ConfigError` naming the file and each invalid field.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: workflow file not found; copy one from workflows/") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    try:
        return WorkflowConfig.model_validate(data), path.resolve().parent
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid workflow: {problems}. See schemas/workflow.schema.json") from exc


SCHEMAS: dict[str, type[BaseModel]] = {"workflow": WorkflowConfig}
