"""Train a spaCy NER pipeline (scispaCy tokenizer) on a BIO corpus folder, on CPU, within a time budget.

A plain loop over ``nlp.update``: seeded shuffling, compounding batch sizes, Adam with warm-up and
parameter averaging, evaluation on the dev split after every epoch (exact-span micro-F1 on the gold
tokenization), early stopping after ``patience`` epochs without improvement, and a hard wall-clock
budget (training stops early enough to evaluate and save). The best epoch's weights are saved with
``nlp.to_disk`` plus ``medmm_ner.json`` (corpus, labels, epochs, dev scores, seed, timings).

Run long trainings from a shell with ``python -m medmm.reports.ner.train --corpus DIR --out DIR``.

>>> from medmm.datasets import shared_data_dir
>>> res = train_ner(shared_data_dir() / "text/bc5cdr", Path("/tmp/bc5cdr"))  # doctest: +SKIP
>>> res.dev_scores["micro"]["f1"]  # doctest: +SKIP
0.83
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from medmm.reports.ner.corpus import CorpusFormatError, NerDoc, corpus_stats, read_corpus_dir
from medmm.reports.ner.evaluate import evaluate_docs
from medmm.reports.ner.pipeline import DEFAULT_HYPERPARAMS, build_pipeline, examples_from_docs
from medmm.reports.ner.pubtator import (
    NCBI_DISEASE_TYPES,
    examples_from_pubtator,
    read_pubtator,
    score_pubtator_docs,
)
from medmm.tables import atomic_write_json

__all__ = ["META_FILE", "NerTrainResult", "main", "train_ner"]

log = logging.getLogger(__name__)

#: Training record written beside the spaCy pipeline files.
META_FILE = "medmm_ner.json"


@dataclass
class NerTrainResult:
    """What :func:`train_ner` did; also written (as JSON) to ``<out_dir>/medmm_ner.json``."""

    out_dir: str
    corpus: str
    labels: list[str]
    epochs: int
    best_epoch: int
    dev_scores: dict[str, Any]
    stopped: str
    seed: int
    wall_s: float
    cpu_s: float
    n_train_docs: int
    n_dev_docs: int
    settings: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form."""
        return asdict(self)


def _split(splits: dict[str, list[NerDoc]], name: str, corpus_dir: Path, limit: int | None) -> list[NerDoc]:
    if name not in splits:
        raise CorpusFormatError(
            str(corpus_dir),
            f"split {name!r} not found (have: {', '.join(sorted(splits)) or 'none'})",
            f"add {name}.tsv to the folder or pass the split name that exists",
        )
    docs = splits[name]
    if not docs:
        raise CorpusFormatError(str(corpus_dir / name), "split has no sentences", "check the file")
    return docs[:limit] if limit else docs


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("medmm", "spacy", "scispacy", "thinc"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def train_ner(
    corpus_dir: Path,
    out_dir: Path,
    *,
    train_split: str = "train",
    dev_split: str = "devel",
    max_minutes: float = 18,
    seed: int = 0,
    max_docs: int | None = None,
    progress: bool = True,
    max_dev_docs: int | None = None,
    max_epochs: int = 100,
    patience: int = 4,
    dropout: float = 0.15,
    learn_rate: float = 0.001,
    hyperparams: Mapping[str, Any] | None = None,
    budget_clock: str = "wall",
    train_text: Path | None = None,
    train_text_label_map: Mapping[str, str] | None = None,
    dev_text: Path | None = None,
) -> NerTrainResult:
    """Train, early-stop on the dev split, and save a spaCy NER pipeline with scispaCy's tokenizer.

    Parameters
    ----------
    corpus_dir : Path
        Folder with ``<split>.tsv`` BIO files (e.g. ``text/bc5cdr`` with ``train.tsv``, ``devel.tsv``).
    out_dir : Path
        Where the pipeline goes (``spacy.load(out_dir)`` loads it); created, files overwritten.
    train_split, dev_split : str
        File stems of the training split and of the split used for early stopping / model selection.
    max_minutes : float
        Wall-clock budget for the whole call (reading, training, evaluating, saving).
    seed : int
        Seeds weight initialisation, dropout and shuffling.
    max_docs, max_dev_docs : int, optional
        Use only the first N training / dev sentences (quick runs, tests).
    progress : bool
        Show a tqdm bar per epoch on stderr.
    max_epochs, patience : int
        Upper bound on epochs; stop after ``patience`` epochs without a better dev micro-F1.
    dropout, learn_rate : float
        Dropout rate and Adam peak learning rate (linear warm-up, then linear decay).
    hyperparams : mapping, optional
        Architecture overrides (see :data:`~medmm.reports.ner.pipeline.DEFAULT_HYPERPARAMS`).
    budget_clock : {"wall", "cpu"}
        What ``max_minutes`` measures: wall-clock time (default), or this process' CPU time, for a
        machine shared with other jobs (training is single-threaded, so on an idle machine both agree).
    train_text : Path, optional
        A PubTator file of raw abstracts to train on *instead of* the BIO train split, tokenized by the
        pipeline's (scispaCy) tokenizer, so training sees the tokens inference will see; mentions that
        do not fall on token boundaries are left out as missing. Dev scoring stays on ``dev_split``.
    train_text_label_map : mapping, optional
        Renames PubTator types (e.g. :data:`~medmm.reports.ner.pubtator.NCBI_DISEASE_TYPES`), also
        for ``dev_text``.
    dev_text : Path, optional
        A PubTator file of raw dev abstracts: early stopping then uses exact character-span micro-F1
        on raw text (the pipeline's own tokenizer) instead of ``dev_split``.

    Returns
    -------
    NerTrainResult
        Labels, epochs, best dev scores, why training stopped, wall and CPU seconds.

    >>> import tempfile
    >>> from medmm.datasets import shared_data_dir
    >>> res = train_ner(shared_data_dir() / "text/bc5cdr", Path(tempfile.mkdtemp()), max_minutes=0.5,
    ...                 max_docs=100, max_dev_docs=50, progress=False)  # doctest: +SKIP
    >>> res.labels  # doctest: +SKIP
    ['Chemical', 'Disease']
    """
    from spacy.util import minibatch
    from thinc.api import Adam, compounding, warmup_linear
    from tqdm import tqdm

    if budget_clock not in ("wall", "cpu"):
        raise ValueError(f"budget_clock must be 'wall' or 'cpu', not {budget_clock!r}")
    clock = time.perf_counter if budget_clock == "wall" else time.process_time
    wall0, cpu0 = time.perf_counter(), time.process_time()
    start = clock()
    budget_s = max_minutes * 60.0
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    splits = read_corpus_dir(corpus_dir)
    train_docs = _split(splits, train_split, corpus_dir, max_docs)
    dev_docs = _split(splits, dev_split, corpus_dir, max_dev_docs)
    text_docs = read_pubtator(train_text, label_map=train_text_label_map) if train_text else []
    text_docs = text_docs[:max_docs] if max_docs else text_docs
    dev_text_docs = read_pubtator(dev_text, label_map=train_text_label_map) if dev_text else []
    dev_text_docs = dev_text_docs[:max_dev_docs] if max_dev_docs else dev_text_docs
    if text_docs:
        labels = sorted({lab for d in text_docs for _, _, lab in d.entities})
    else:
        labels = sorted({lab for d in train_docs for _, _, lab in d.spans})
    if not labels:
        raise CorpusFormatError(
            str(corpus_dir / train_split), "training split has no entities", "check the BIO tags"
        )
    hp = {**DEFAULT_HYPERPARAMS, **(hyperparams or {})}
    nlp = build_pipeline(labels, seed=seed, hyperparams=hp)
    examples = examples_from_pubtator(nlp, text_docs) if text_docs else examples_from_docs(nlp, train_docs)
    optimizer = Adam(
        learn_rate=warmup_linear(initial_rate=learn_rate, warmup_steps=250, total_steps=20000),  # type: ignore[arg-type]
        L2=0.01,
        grad_clip=1.0,
        use_averages=True,
    )
    nlp.initialize(lambda: examples, sgd=optimizer)
    rng = random.Random(seed)
    # ~100 -> ~800 tokens per batch: 4 -> 32 corpus sentences; fewer when training on whole abstracts
    scale = 1.0
    if text_docs:
        mean_len = sum(len(ex.reference) for ex in examples) / len(examples)
        scale = 25.0 / mean_len
    sizes = compounding(max(1.0, 4.0 * scale), max(1.0, 32.0 * scale), 1.001)

    best_f1, best_epoch, best_bytes, best_scores = -1.0, 0, b"", {}
    history: list[dict[str, Any]] = []
    eval_s = 0.0
    stopped, epoch = "max_epochs", 0
    log.info("training NER on %d sentences (%s), labels %s", len(examples), corpus_dir.name, labels)
    for epoch in range(1, max_epochs + 1):
        rng.shuffle(examples)
        losses: dict[str, float] = {}
        out_of_time = False
        bar = tqdm(total=len(examples), desc=f"epoch {epoch}", disable=not progress, leave=False, unit="sent")
        for batch in minibatch(examples, size=sizes):
            nlp.update(batch, drop=dropout, sgd=optimizer, losses=losses)
            optimizer.step_schedules()  # advance the warm-up/decay schedule (spaCy's loop does the same)
            bar.update(len(batch))
            # keep room for one dev evaluation plus saving (~the last evaluation's duration + margin)
            if clock() - start > budget_s - 1.5 * eval_s - 5.0:
                out_of_time = True
                break
        bar.close()
        t_eval = clock()
        with nlp.use_params(optimizer.averages):
            scores = (
                score_pubtator_docs(nlp, dev_text_docs) if dev_text_docs else evaluate_docs(nlp, dev_docs)
            )
            f1 = float(scores["micro"]["f1"])
            if f1 > best_f1:
                best_f1, best_epoch, best_scores, best_bytes = f1, epoch, scores, nlp.to_bytes()
        eval_s = clock() - t_eval
        elapsed = clock() - start
        history.append(
            {
                "epoch": epoch,
                "loss": round(losses.get("ner", 0.0), 2),
                "dev_f1": f1,
                "wall_s": round(time.perf_counter() - wall0, 1),
                "cpu_s": round(time.process_time() - cpu0, 1),
                "partial_epoch": out_of_time,
            }
        )
        msg = (
            f"epoch {epoch}: loss {losses.get('ner', 0.0):.1f} dev micro-F1 {f1:.4f} "
            f"(best {best_f1:.4f} @ {best_epoch}) {elapsed:.0f}s {budget_clock}"
        )
        if progress:
            tqdm.write(msg, file=sys.stderr)
        else:
            log.info(msg)
        if out_of_time:
            stopped = "time_budget"
            break
        if epoch - best_epoch >= patience:
            stopped = "early_stopping"
            break
        # stop when another epoch of the same length would not fit in the budget
        epoch_s = elapsed / epoch
        if elapsed + epoch_s > budget_s - 5.0:
            stopped = "time_budget"
            break

    nlp.from_bytes(best_bytes)
    corpus_name = corpus_dir.name
    nlp.meta.update(
        {
            "name": f"medmm_ner_{corpus_name}".replace("-", "_"),
            "version": "0.0.0",
            "description": (
                f"medmm NER trained on {corpus_name}/{train_split} (scispaCy tokenizer, no vectors)"
            ),
            "labels": {"ner": labels},
            "performance": {
                "ents_p": best_scores["micro"]["precision"],
                "ents_r": best_scores["micro"]["recall"],
                "ents_f": best_scores["micro"]["f1"],
            },
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(out_dir)
    result = NerTrainResult(
        out_dir=str(out_dir),
        corpus=str(corpus_dir),
        labels=labels,
        epochs=epoch,
        best_epoch=best_epoch,
        dev_scores=best_scores,
        stopped=stopped,
        seed=seed,
        wall_s=round(time.perf_counter() - wall0, 1),
        cpu_s=round(time.process_time() - cpu0, 1),
        n_train_docs=len(text_docs) if text_docs else len(train_docs),
        n_dev_docs=len(dev_text_docs) if dev_text_docs else len(dev_docs),
        settings={
            "train_split": train_split,
            "dev_split": dev_split,
            "max_minutes": max_minutes,
            "budget_clock": budget_clock,
            "max_docs": max_docs,
            "max_dev_docs": max_dev_docs,
            "max_epochs": max_epochs,
            "patience": patience,
            "dropout": dropout,
            "learn_rate": learn_rate,
            "hyperparams": hp,
            "tokenizer": "scispacy.custom_tokenizer.combined_rule_tokenizer",
            "evaluation": (
                "exact character spans on raw dev_text (model tokenizer)"
                if dev_text_docs
                else "exact span match on the gold tokenization"
            ),
            "train_text": str(train_text) if train_text else None,
            "train_text_label_map": dict(train_text_label_map or {}),
            "dev_text": str(dev_text) if dev_text else None,
            "train_stats": corpus_stats(train_docs)
            if not text_docs
            else {"docs": len(text_docs), "entities": len([e for d in text_docs for e in d.entities])},
            "dev_stats": corpus_stats(dev_docs),
        },
        history=history,
        versions=_versions(),
    )
    atomic_write_json(out_dir / META_FILE, result.to_dict())
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m medmm.reports.ner.train --corpus DIR --out DIR [...]``: train and print the result."""
    parser = argparse.ArgumentParser(
        prog="python -m medmm.reports.ner.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--corpus", type=Path, required=True, help="folder with train.tsv/devel.tsv (BIO)")
    parser.add_argument("--out", type=Path, required=True, help="output pipeline folder")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--dev-split", default="devel")
    parser.add_argument("--max-minutes", type=float, default=18.0)
    parser.add_argument("--budget-clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--max-dev-docs", type=int, default=None)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.15)
    parser.add_argument("--learn-rate", type=float, default=0.001)
    parser.add_argument("--hyperparams", type=json.loads, default=None, help="JSON, e.g. '{\"depth\": 6}'")
    parser.add_argument("--train-text", type=Path, default=None, help="PubTator abstracts to train on")
    parser.add_argument("--dev-text", type=Path, default=None, help="PubTator abstracts for early stopping")
    parser.add_argument("--ncbi-types", action="store_true", help="map NCBI's 4 PubTator types to Disease")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    res = train_ner(
        args.corpus,
        args.out,
        train_split=args.train_split,
        dev_split=args.dev_split,
        max_minutes=args.max_minutes,
        seed=args.seed,
        max_docs=args.max_docs,
        max_dev_docs=args.max_dev_docs,
        progress=not args.quiet,
        max_epochs=args.max_epochs,
        patience=args.patience,
        dropout=args.dropout,
        learn_rate=args.learn_rate,
        hyperparams=args.hyperparams,
        budget_clock=args.budget_clock,
        train_text=args.train_text,
        dev_text=args.dev_text,
        train_text_label_map=NCBI_DISEASE_TYPES if args.ncbi_types else None,
    )
    summary = {k: v for k, v in res.to_dict().items() if k not in ("history", "settings")}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
