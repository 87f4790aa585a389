"""Typed configuration of ``workflows/train_*.yaml`` (pydantic; unknown keys are errors).

>>> cfg = TrainConfig.model_validate({"run_dir": "runs/x", "fusion": "attention",
...     "modalities": {"report": {}}, "tasks": [{"name": "dx", "labels": ["abnormal"]}]})
>>> cfg.train.seed, cfg.modalities["report"].out_dim
(0, 32)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medmm.align.records import MODALITIES
from medmm.devices import parse_device_name
from medmm.errors import ConfigError
from medmm.models.fusion.registry import FUSIONS
from medmm.models.heads import TaskSpec

__all__ = [
    "REPORT_FEATURES",
    "AugmentConfig",
    "EncoderConfig",
    "ImageInputConfig",
    "LossConfig",
    "ReportInputConfig",
    "ReportTextConfig",
    "TaskConfig",
    "TrainConfig",
    "TrainingConfig",
    "describe_validation_error",
    "load_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncoderConfig(_Strict):
    """One modality's encoder: ``arch`` (imaging: resnet_small/resnet18/densenet121; signal: cnn/gru)."""

    arch: str | None = None
    out_dim: int = Field(32, ge=1)
    spatial_dims: Literal[2, 3] = 2


class AugmentConfig(_Strict):
    """Random image augmentation of *training* samples, applied after the cache (seeded by ``train.seed``).

    ``flip_prob``: left-right flip (first RAS axis); ``rotate90_prob``: a random multiple of 90 degrees
    in the axial plane; ``shift_intensity`` / ``scale_intensity``: add an offset / multiply by
    ``1 + factor`` drawn uniformly from ``[-value, value]``. All zero (the default): no augmentation.
    """

    flip_prob: float = Field(0.0, ge=0, le=1)
    rotate90_prob: float = Field(0.0, ge=0, le=1)
    shift_intensity: float = Field(0.0, ge=0)
    scale_intensity: float = Field(0.0, ge=0)

    def active(self) -> bool:
        """Whether any augmentation is configured."""
        return bool(self.flip_prob or self.rotate90_prob or self.shift_intensity or self.scale_intensity)


class ImageInputConfig(_Strict):
    """How the imaging branch of the Dataset reads volumes (see ``docs/models.md``, *Datasets*).

    ``source``: ``volumes`` = the ingested NIfTI of ``volumes.parquet`` through a MONAI transform chain
    (:mod:`medmm.models.transforms`); ``arrays`` = the pre-resized ``inputs/image`` arrays written by
    ``medmm align`` / the benches; ``auto`` = ``volumes`` when the run has ``volumes.parquet``, else
    ``arrays``. ``size`` is the output side (2D: in-plane, 3D: every axis) or one value per axis.
    """

    source: Literal["auto", "volumes", "arrays"] = "auto"
    size: int | list[int] = 64
    orientation: str = "RAS"
    pixdim: list[float] | None = None
    resize: Literal["resize", "pad_crop"] = "resize"
    normalize: Literal["auto", "zscore", "zscore_nonzero", "ct_window", "percentiles", "none"] = "auto"
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    percentiles: tuple[float, float] = (0.5, 99.5)
    slice: Literal["middle", "index", "all", "largest_mask", "largest_foreground"] = "middle"
    slice_index: int = 0
    mask_table: Path | None = None
    mask_labels: list[int] | None = None
    cache: Literal["none", "memory", "disk"] = "memory"
    cache_dir: Path | None = None
    cache_workers: int = Field(1, ge=1)
    augment: AugmentConfig = AugmentConfig()


#: What the report encoder can read, in input order (see ``docs/models-report-inputs.md``).
REPORT_FEATURES = ("findings", "entities", "text")


class ReportTextConfig(_Strict):
    """The learned text embedding of ``report_input.features: [..., text]``.

    Words and word n-grams (up to ``ngrams`` words) of the report text are hashed with a key derived
    from the site key into ``buckets`` ids; an ``EmbeddingBag`` of ``dim`` dimensions (mean over the
    report's ids) is trained end to end. A report keeps its first ``max_tokens`` ids.
    """

    buckets: int = Field(65536, ge=16, le=4_194_304)
    dim: int = Field(32, ge=1)
    ngrams: int = Field(2, ge=1, le=3)
    max_tokens: int = Field(512, ge=1)


class ReportInputConfig(_Strict):
    """What the report branch reads (default ``[findings]``: the finding vector, as before).

    ``findings``: the present/absent/uncertain one-hot vector over the run's finding vocabulary
    (``inputs/report``, written by ``medmm align``); ``entities``: a hashed bag of the report's entities
    (``entities.parquet``) with their assertion status, ``entity_dim`` long; ``text``: a learned
    embedding of the report text (needs ``report_texts.parquet``, i.e. ``medmm reports parse
    --keep-text``; see ``text``).
    """

    features: list[Literal["findings", "entities", "text"]] = Field(default=["findings"], min_length=1)
    entity_dim: int = Field(16384, ge=8, le=1_048_576)
    text: ReportTextConfig = ReportTextConfig()

    @field_validator("features")
    @classmethod
    def _unique_features(cls, v: list[str]) -> list[str]:
        twice = sorted({f for f in v if v.count(f) > 1})
        if twice:
            raise ValueError(f"report_input.features lists {twice} more than once")
        return [f for f in REPORT_FEATURES if f in v]  # canonical input order

    def is_default(self) -> bool:
        """Whether only the finding vector is read (the behaviour of configs without ``report_input``)."""
        return self.features == ["findings"]


class TaskConfig(_Strict):
    """A task: ``multilabel`` diagnosis or ``anomaly`` score, over label names in the records."""

    name: str
    kind: Literal["multilabel", "anomaly"] = "multilabel"
    labels: list[str] = Field(min_length=1)
    weight: float = Field(1.0, ge=0)

    def spec(self) -> TaskSpec:
        """The model-side task specification."""
        return TaskSpec(self.name, self.kind, tuple(self.labels))


class LossConfig(_Strict):
    """Multi-task weighting: ``fixed`` (task weights) or ``uncertainty`` (learned, Kendall et al.)."""

    weighting: Literal["fixed", "uncertainty"] = "fixed"


class TrainingConfig(_Strict):
    """Optimisation, splitting and hardware settings."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(5, ge=1)
    schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    modality_dropout: float = Field(0.0, ge=0, lt=1)
    seed: int = 0
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
    folds: int = Field(1, ge=1)
    #: ``auto`` (the GPU when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``: the names of
    #: :func:`medmm.devices.resolve_device`, checked and normalised here by
    #: :func:`medmm.devices.parse_device_name` (the same rules and suggestions); whether that GPU exists
    #: is checked when training starts (an error naming ``train.device``, never a silent CPU run).
    device: str = "auto"
    amp: bool = True
    deterministic: bool = True
    progress: bool = True
    n_boot: int = Field(1000, ge=0)
    num_threads: int | None = Field(None, ge=1)

    @field_validator("device", mode="before")
    @classmethod
    def _device_name(cls, v: object) -> object:
        # YAML may give a number (``device: 0``) or nothing (``device:``): the parser suggests the name
        if v is None or (isinstance(v, (str, int)) and not isinstance(v, bool)):
            return parse_device_name(None if v is None else str(v))
        return v  # another type: pydantic's "Input should be a valid string"

    @model_validator(mode="after")
    def _room_to_train(self) -> TrainingConfig:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"train.val_fraction + train.test_fraction = {self.val_fraction + self.test_fraction:g} "
                "leaves no patients to train on; keep the sum below 1 (e.g. 0.15 + 0.2)"
            )
        return self


class TrainConfig(_Strict):
    """Everything ``medmm train`` needs: where the records are, the model and the training."""

    run_dir: Path
    out_dir: Path | None = None
    #: A fixed split table (``record_id``, ``patient_id``, ``split``, ``fold``), e.g. the cohort's
    #: source-disjoint ``splits.parquet``; when absent, a seeded patient-level split is made.
    splits_file: Path | None = None
    modalities: dict[str, EncoderConfig]
    fusion: str = "attention"
    embed_dim: int = Field(32, ge=1)
    tasks: list[TaskConfig] = Field(min_length=1)
    loss: LossConfig = LossConfig()
    train: TrainingConfig = TrainingConfig()
    image_input: ImageInputConfig = ImageInputConfig()
    report_input: ReportInputConfig = ReportInputConfig()

    @field_validator("modalities")
    @classmethod
    def _known_modalities(cls, v: dict[str, EncoderConfig]) -> dict[str, EncoderConfig]:
        bad = [m for m in v if m not in MODALITIES]
        if bad or not v:
            raise ValueError(f"modalities must be a non-empty subset of {list(MODALITIES)}, got {list(v)}")
        from medmm.models.encoders import IMAGING_ARCHS, SIGNAL_ARCHS

        archs: dict[str, tuple[str, ...]] = {"image": IMAGING_ARCHS, "signal": SIGNAL_ARCHS, "report": ()}
        for m, enc in v.items():
            if enc.arch is not None and enc.arch not in archs[m]:
                valid = (
                    f"choose one of {list(archs[m])}" if archs[m] else "it has one encoder: leave arch out"
                )
                raise ValueError(f"modalities.{m}.arch {enc.arch!r} is not a {m} encoder; {valid}")
        return {m: v[m] for m in MODALITIES if m in v}  # canonical mask order

    @field_validator("fusion")
    @classmethod
    def _known_fusion(cls, v: str) -> str:
        if v not in FUSIONS:
            raise ValueError(f"unknown fusion {v!r}; choose one of {sorted(FUSIONS)}")
        return v

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, v: list[TaskConfig]) -> list[TaskConfig]:
        names = [t.name for t in v]
        labels = [lab for t in v for lab in t.labels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"task names must be unique (each has its own head); repeated: {twice}")
        twice = sorted({n for n in labels if labels.count(n) > 1})
        if twice:
            raise ValueError(f"a label may appear once over all tasks; repeated: {twice}")
        return v

    @model_validator(mode="after")
    def _report_input_needs_report(self) -> TrainConfig:
        if not self.report_input.is_default() and "report" not in self.modalities:
            raise ValueError(
                f"report_input.features {self.report_input.features} is set but modalities has no report; "
                "add `report: {}` to modalities, or leave report_input out"
            )
        return self

    def label_names(self) -> list[str]:
        """All label names in model output order (tasks concatenated)."""
        return [name for t in self.tasks for name in t.labels]

    def output_dir(self) -> Path:
        """``out_dir`` or ``RUN_DIR/models/<fusion>``."""
        return self.out_dir or self.run_dir / "models" / self.fusion


def _field_names(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys valid at ``loc`` (the parent of an unknown key) in ``model``'s schema."""
    import typing

    current: object = model
    skip_next = False  # the part after a list/dict field is an index / key, not a field name
    for part in loc:
        if skip_next:
            skip_next = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = field.annotation
        origin = typing.get_origin(current)
        if origin in (list, dict):
            skip_next = True
        # unwrap containers (list[TaskConfig], dict[str, EncoderConfig]) and Optional
        while typing.get_args(current) and not (isinstance(current, type) and issubclass(current, BaseModel)):
            current = [a for a in typing.get_args(current) if a is not type(None)][-1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def describe_validation_error(exc: ValidationError, model: type[BaseModel] = TrainConfig) -> str:
    """One line per problem: ``where: what (got ...)``, unknown keys with the valid ones and a suggestion.

    >>> try:
    ...     TrainConfig.model_validate({"run_dir": "r", "modalities": {"report": {}},
    ...         "tasks": [{"name": "dx", "labels": ["a"]}], "train": {"epoch": 3}})
    ... except ValidationError as exc:
    ...     print(describe_validation_error(exc))
    train.epoch: unknown key (did you mean 'epochs'?; valid here: epochs, batch_size, lr, weight_decay, \
patience, schedule, modality_dropout, seed, val_fraction, test_fraction, folds, device, amp, deterministic, \
progress, n_boot, num_threads)
    """
    import difflib

    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            valid = _field_names(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"did you mean {close[0]!r}?; " if close else ""
            lines.append(f"{where}: unknown key ({hint}valid here: {', '.join(valid)})")
        elif err["type"] == "model_type" and not loc:
            lines.append("(top level): expected a mapping of keys (run_dir, modalities, tasks, ...)")
        else:
            got = err.get("input")
            shown = "" if err["type"] in ("missing", "value_error") else f" (got {got!r})"
            lines.append(f"{where}: {err['msg']}{shown}")
    return "\n  ".join(lines)


def load_config(path: Path) -> TrainConfig:
    """Read and validate a ``train_*.yaml``; relative paths are taken from the current directory.

    Errors (:class:`~medmm.errors.ConfigError`) name the file and each problem: an unknown key with the
    valid keys at its place, a wrong type with the value given.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; pass a training config file, e.g. workflows/train_*.yaml")
    try:
        data = yaml.safe_load(path.read_text())
        return TrainConfig.model_validate(data)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such training config; see workflows/train_*.yaml") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: invalid training config (see workflows/train_*.yaml and docs/models.md):\n  "
            + describe_validation_error(exc)
        ) from None
