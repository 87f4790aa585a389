"""The validation loss that selects the kept epoch, and when it is undefined.

:func:`validation_loss` combines the tasks' validation losses (each the mean binary cross-entropy over every
known label of the validation split, computed by :mod:`medmm.models.train`) on the training loss's scale,
from the tasks that have a known validation label only; ``None`` when none has. :func:`unlabelled_notes` is
the warning for the tasks that have none. With an undefined loss :func:`medmm.models.train.fit` keeps the
last epoch, does not stop early and does not step ``schedule: plateau`` (see ``docs/models.md``, *Validation
loss, early stopping and the kept epoch*).

>>> validation_loss({"dx": 0.5, "pvc": None})
1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medmm.models.config import TrainingConfig
from medmm.models.heads import TaskSpec

__all__ = ["unlabelled_notes", "validation_loss"]


def validation_loss(
    task_losses: Mapping[str, float | None], weights: Mapping[str, float] | None = None
) -> float | None:
    """The validation loss from the tasks' losses: their weighted sum, a task without validation labels
    counted at the weighted mean of the others; ``None`` when no task has a validation label.

    ``task_losses`` has every task (``None``: no known validation label of it). ``weights`` are the
    fixed task weights (default 1 each; with ``loss.weighting: uncertainty`` training passes none). With
    every task labelled this is the training loss's fixed-weight sum, so the two curves are on one
    scale; with some unlabelled it is the weighted mean over the labelled tasks times the sum of all
    weights: the unlabelled ones neither add 0 (which would make the loss look better than it is) nor
    make the whole loss undefined. If the labelled tasks' weights sum to 0, every task counts 1.

    >>> validation_loss({"dx": 0.5}), validation_loss({"dx": None})
    (0.5, None)
    >>> validation_loss({"dx": 0.2, "pvc": 0.8}), validation_loss({"dx": 0.2, "pvc": None})
    (1.0, 0.4)
    >>> round(validation_loss({"dx": 0.2, "pvc": 0.8, "ecg": None}, {"dx": 3.0, "pvc": 1.0, "ecg": 4.0}), 6)
    2.8
    """
    defined = {t: v for t, v in task_losses.items() if v is not None}
    if not defined:
        return None
    w = {t: float((weights or {}).get(t, 1.0)) for t in task_losses}
    if sum(w[t] for t in defined) <= 0:
        w = dict.fromkeys(task_losses, 1.0)
    mean = sum(w[t] * v for t, v in defined.items()) / sum(w[t] for t in defined)
    return mean * sum(w.values())


def unlabelled_notes(
    tasks: Sequence[TaskSpec], counts: Mapping[str, int], n_samples: int, train: TrainingConfig
) -> list[str]:
    """The warning about tasks without any known validation label (none when every task has one).

    ``counts`` is the number of known validation labels per task, ``n_samples`` the validation split's
    size; the warning names the tasks, their labels, what happens (the mean over the other tasks, or an
    undefined loss: no early stopping, the last epoch kept, no plateau step) and the fix.

    >>> from medmm.models.config import TrainingConfig
    >>> tasks = [TaskSpec("dx", "multilabel", ("pvc",))]
    >>> print(unlabelled_notes(tasks, {"dx": 0}, 2, TrainingConfig(epochs=5))[0][:79])
    the validation split (2 sample(s)) has no known label of task(s) ['dx'] (labels
    >>> unlabelled_notes(tasks, {"dx": 3}, 2, TrainingConfig())
    []
    """
    missing = [t for t in tasks if counts[t.name] == 0]
    if not missing:
        return []
    labels = [lab for t in missing for lab in t.labels]
    what = (
        f"the validation split ({n_samples} sample(s)) has no known label of task(s) "
        f"{[t.name for t in missing]} (labels {labels})"
    )
    fix = (
        "Fix: a larger train.val_fraction, or a splits_file whose val split has records with these labels "
        "(both classes)"
    )
    if len(missing) < len(tasks):
        rest = [t.name for t in tasks if counts[t.name]]
        return [
            f"{what}: the validation loss rests on the other task(s) {rest} only (their weighted mean "
            f"stands in for the missing ones). {fix}"
        ]
    lr = "; schedule plateau keeps its learning rate" if train.schedule == "plateau" else ""
    return [
        f"{what}: the validation loss is undefined (null in the history), so early stopping is off and the "
        f"last epoch ({train.epochs}) is kept, not the best one{lr}. {fix}"
    ]
