"""``medmm train``, ``medmm evaluate`` and ``medmm models compare`` (heavy imports inside commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

__all__ = ["anomaly_lines", "register"]

models_app = typer.Typer(help="Compare multimodal models.", no_args_is_help=True)


_DEVICE_HELP = "auto (the GPU when there is one, else the CPU), cpu, cuda or cuda:N."


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def train(
    config: Path = typer.Argument(..., help="workflows/train_*.yaml"),
    out_dir: Path | None = typer.Option(None, "--out", help="Override out_dir of the config."),
    seed: int | None = typer.Option(None, help="Override train.seed."),
    epochs: int | None = typer.Option(None, help="Override train.epochs."),
    device: str | None = typer.Option(None, help="Override train.device: " + _DEVICE_HELP),
) -> None:
    """Train the configured model (one patient-level split, or k folds) and write checkpoint + metrics."""
    from pydantic import ValidationError

    from medmm.devices import resolve_device
    from medmm.errors import ConfigError, MedmmError
    from medmm.models.config import TrainConfig, describe_validation_error, load_config
    from medmm.models.metrics import format_ci
    from medmm.runinfo import Timer, update_run_json

    try:
        cfg = load_config(config)
        data = cfg.model_dump()
        if out_dir is not None:
            data["out_dir"] = out_dir
        if seed is not None:
            data["train"]["seed"] = seed
        if epochs is not None:
            data["train"]["epochs"] = epochs
        try:  # the overrides are checked like the file (e.g. --epochs 0 is refused)
            cfg = TrainConfig.model_validate(data)
        except ValidationError as exc:
            given = {"--out": out_dir, "--seed": seed, "--epochs": epochs}
            options = " ".join(f"{k} {v}" for k, v in given.items() if v is not None)
            raise ConfigError(
                f"invalid option: {options}: {describe_validation_error(exc)}. Fix: give a value the "
                f"training config accepts there (see docs/models.md), or leave the option out "
                f"to use {config}'s"
            ) from None
        if device is not None:
            dev = resolve_device(device, source="--device")
        else:
            dev = resolve_device(cfg.train.device, source=f"{config}: train.device")
        from medmm.models.runner import train_from_config

        timer = Timer()
        with timer("train"):
            summary = train_from_config(cfg, device=dev)
    except MedmmError as exc:
        _fail(exc)
        return
    out = cfg.output_dir()
    update_run_json(
        cfg.run_dir,
        "train",
        options=cfg.model_dump(mode="json"),
        counts={"folds": len(summary["folds"])},
        timings=timer.total(),
        extra={"data_version": summary["data_version"], "out_dir": str(out), "device": summary["device"]},
    )
    if "test" in summary:
        for k, v in summary["test"]["macro"].items():
            typer.echo(f"test {k:12s} {format_ci(v)}")
    for note in summary.get("notes", []):
        typer.echo(f"warning: {note}", err=True)
    typer.echo(f"wrote {out}")


def evaluate(
    model: Path = typer.Option(..., "--model", help="model.pt from `medmm train`"),
    run_dir: Path = typer.Argument(..., help="Run directory with records.parquet and inputs/"),
    split: str = typer.Option("test", help="train/val/test (from the checkpoint's splits.parquet) or all"),
    drop: list[str] = typer.Option([], "--drop", help="Modality to hide at test time (repeatable)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Default: next to the checkpoint, eval_<split>/"),
    slice_aggregation: str | None = typer.Option(
        None,
        help="mean | max: how a record's slice scores (image_input.slice: all) combine before the metrics. "
        "Default: the checkpoint's (mean).",
    ),
    device: str = typer.Option("auto", help=_DEVICE_HELP),
) -> None:
    """Evaluate a checkpoint: metrics JSON (per label + macro, 95% bootstrap CIs) and a PNG plot."""
    from medmm.devices import resolve_device
    from medmm.errors import MedmmError
    from medmm.models.metrics import format_ci
    from medmm.models.runner import evaluate_checkpoint

    out = out_dir or model.parent / f"eval_{split}{''.join('_no_' + d for d in drop)}"
    try:
        dev = resolve_device(device, source="--device")
        result = evaluate_checkpoint(model, run_dir, out, split, tuple(drop), slice_aggregation, dev)
    except MedmmError as exc:
        _fail(exc)
        return
    for k, v in result["metrics"]["macro"].items():
        typer.echo(f"{k:12s} {format_ci(v)}")
    for line in anomaly_lines(result["embedding_anomaly"]):
        typer.echo(line)
    for note in result["notes"]:
        typer.echo(f"warning: {note}", err=True)
    typer.echo(f"wrote {out / 'metrics.json'}")


@models_app.command("compare")
def compare(
    run_dir: Path = typer.Argument(..., help="Run directory with records.parquet and inputs/"),
    out_dir: Path | None = typer.Option(None, "--out", help="Default: RUN_DIR/compare"),
    target: str = typer.Option("abnormal", help="Label to compare on."),
    strategy: list[str] = typer.Option([], "--strategy", help="Fusion strategy (repeatable; default all)."),
    epochs: int = typer.Option(12),
    batch_size: int = typer.Option(32),
    lr: float = typer.Option(2e-3),
    seed: int = typer.Option(0),
    n_boot: int = typer.Option(1000),
    threads: int | None = typer.Option(None, help="torch intra-op threads"),
    device: str = typer.Option("auto", help=_DEVICE_HELP),
    image_input: list[str] = typer.Option(
        [],
        "--image-input",
        help="KEY=VALUE of the training config's image_input section (repeatable; values are YAML), "
        "e.g. --image-input slice=all --image-input size=64",
    ),
    slice_aggregation: str = typer.Option("mean", help="mean | max: slice scores -> one score per record."),
    report_input: list[str] = typer.Option(
        [],
        "--report-input",
        help="KEY=VALUE of the training config's report_input section (repeatable; values are YAML), "
        "e.g. --report-input features=[findings,entities]: every report model reads these inputs",
    ),
    report_features: list[str] = typer.Option(
        [],
        "--report-features",
        help="A report input set to compare side by side, e.g. findings+entities+text (repeatable): each "
        "report model trains once per set",
    ),
) -> None:
    """Train every unimodal model and fusion strategy on one split; print one table with 95% CIs."""
    from pydantic import ValidationError

    from medmm.devices import resolve_device
    from medmm.errors import MedmmError
    from medmm.models.compare import compare_models, fusion_beats_unimodal, to_markdown

    out = out_dir or run_dir / "compare"
    settings: dict[str, object] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "n_boot": n_boot,
        "num_threads": threads,
        "slice_aggregation": slice_aggregation,
    }
    try:
        dev = resolve_device(device, source="--device")
        settings["image_input"] = _key_values(image_input, "--image-input")
        settings["report_input"] = _key_values(report_input, "--report-input")
        if report_features:
            settings["report_features"] = [f.split("+") for f in report_features]
        table = compare_models(run_dir, out, target, strategy or None, settings, device=dev)
    except MedmmError as exc:
        _fail(exc)
        return
    except ValidationError as exc:
        from medmm.models.config import describe_validation_error

        _fail(
            ValueError(f"invalid option (the training config key it sets): {describe_validation_error(exc)}")
        )
        return
    typer.echo(to_markdown(table))
    typer.echo(f"fusion beats best unimodal (AUROC CIs disjoint): {fusion_beats_unimodal(table)}")
    import json

    per_model = json.loads((out / "compare.json").read_text()).get("embedding_anomaly", {})
    scored = {m: e for m, e in per_model.items() if "metrics" in e}
    if scored:
        typer.echo(f"embedding anomaly score (label-free, image only), test AUROC for {target}:")
        for m, e in scored.items():
            typer.echo(f"  {m:24s} {_ci(e['metrics'][target]['auroc'])}  flagged {e['flag_rate']:.1%}")
    typer.echo(f"wrote {out / 'compare.csv'} and {out / 'compare.md'}")


def _ci(cell: dict[str, Any]) -> str:
    """:func:`~medmm.models.metrics.format_ci` of a cell read back from JSON (``null`` = undefined: nan)."""
    from medmm.models.metrics import format_ci

    return format_ci({q: float("nan") if cell.get(q) is None else cell[q] for q in ("value", "lo", "hi")})


def anomaly_lines(section: dict[str, Any]) -> list[str]:
    """What ``medmm evaluate`` prints of ``metrics.json``'s ``embedding_anomaly`` section: the label-free
    imaging anomaly score's threshold and flag rate, then per label its AUROC and the flag's sensitivity
    and specificity (95% bootstrap CIs); or the note saying why there is no score.

    >>> cell = {"value": 0.8, "lo": 0.7, "hi": 0.9}
    >>> section = {"fit": {"threshold": 4.2, "false_alarm_rate": 0.05}, "n": 20, "flag_rate": 0.1,
    ...            "metrics": {"tumour": {"auroc": cell, "sensitivity": cell, "specificity": cell}}}
    >>> print("\\n".join(anomaly_lines(section)))
    embedding anomaly (label-free, image): 20 scored, 2 flagged (10.0%), threshold 4.200 at rate 0.05
      tumour AUROC 0.800 [0.700, 0.900]  flag Se 0.800 [0.700, 0.900]  Sp 0.800 [0.700, 0.900]
    >>> anomaly_lines({"note": "the model has no image modality: no imaging anomaly score"})
    ['embedding anomaly: none (the model has no image modality: no imaging anomaly score)']
    """
    if "metrics" not in section:
        return [f"embedding anomaly: none ({section.get('note', 'not evaluated')})"]
    fit, n, rate = section.get("fit", {}), int(section["n"]), float(section["flag_rate"])
    threshold, stated = fit.get("threshold", float("nan")), fit.get("false_alarm_rate", float("nan"))
    flagged = round(rate * n) if n else 0
    head = (
        f"embedding anomaly (label-free, image): {n} scored, {flagged} flagged ({rate:.1%}), "
        f"threshold {threshold:.3f} at rate {stated:g}"
    )
    lines = [head]
    labels = {k: v for k, v in section["metrics"].items() if k != "macro"}
    width = max(map(len, labels), default=0)
    for label, m in labels.items():
        lines.append(
            f"  {label:{width}s} AUROC {_ci(m['auroc'])}  flag Se {_ci(m['sensitivity'])}  "
            f"Sp {_ci(m['specificity'])}"
        )
    return lines


def _key_values(items: list[str], option: str) -> dict[str, object]:
    """``["slice=all", "size=64"]`` -> ``{"slice": "all", "size": 64}`` (values parsed as YAML).

    >>> _key_values(["slice=all", "size=[64, 64]"], "--image-input")
    {'slice': 'all', 'size': [64, 64]}
    """
    import yaml

    from medmm.errors import ConfigError

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {item!r}: expected KEY=VALUE, e.g. {option} slice=all")
        out[key.strip()] = yaml.safe_load(value)
    return out


def register(app: typer.Typer) -> None:
    """Add ``train``, ``evaluate`` and the ``models`` sub-app to the medmm CLI."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.add_typer(models_app, name="models")
