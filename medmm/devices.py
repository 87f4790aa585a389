"""Where torch runs: one device concept for every medmm command, and what that device supports.

Every command that runs a network (``medmm train``, ``evaluate``, ``models compare``, ``predict``, the
``predict`` stage of ``medmm run``, ``medmm anomaly train/score/evaluate``) turns its device setting into a
:class:`torch.device` with :func:`resolve_device`, so they all accept the same names and fail the same
way:

* ``auto`` (or empty / not given): the GPU (``cuda``) when ``torch.cuda.is_available()``, else the CPU;
* ``cpu``;
* ``cuda`` or ``cuda:N``: that GPU. On a machine without CUDA, or with ``N`` beyond its GPUs, this is a
  :class:`~medmm.errors.ConfigError` that names where the setting came from (a config key or a
  command-line option) and the fix - never a silent fall-back to the CPU, which would turn a
  minutes-long GPU job into a days-long CPU one without anyone noticing.

The names themselves are checked in one place, :func:`parse_device_name` (used by
:func:`resolve_device` and by the training config's ``train.device``): case and surrounding spaces do
not matter, anything else must be exact, and a near miss (``gpu``, ``cuda1``, ``cuda:01``, ``CUDA : 1``)
is refused with the name meant (:class:`DeviceNameError`).

:func:`autocast_dtype` is the mixed-precision policy (bfloat16 on GPUs that have it, float16 with a
gradient scaler on older GPUs, none on the CPU), :func:`pin_memory_for` whether host batches are pinned
for asynchronous copies, and :func:`deterministic_kernels` asks torch for deterministic kernels inside a
block and restores the previous settings after it.

>>> resolve_device("cpu", source="--device")
device(type='cpu')
>>> autocast_dtype(torch.device("cpu")) is None
True
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from medmm.errors import ConfigError

__all__ = [
    "CUBLAS_WORKSPACE",
    "DEVICE_NAMES",
    "DeviceNameError",
    "autocast_dtype",
    "deterministic_kernels",
    "needs_grad_scaler",
    "parse_device_name",
    "pin_memory_for",
    "resolve_device",
]

log = logging.getLogger(__name__)

#: ``CUBLAS_WORKSPACE_CONFIG`` value that makes cuBLAS GEMMs deterministic (CUDA >= 10.2).
CUBLAS_WORKSPACE = ":4096:8"


#: The device names medmm accepts, in words (the end of every message about a wrong name).
DEVICE_NAMES = "auto (the GPU when there is one, else the CPU), cpu, cuda or cuda:N (GPU N)"

#: A device name after :func:`parse_device_name`'s normalisation (GPU numbers without leading zeros).
_VALID = re.compile(r"auto|cpu|cuda(?::(?:0|[1-9][0-9]*))?", re.ASCII)
#: A GPU number written another way: ``gpu0``, ``cuda1``, ``cuda 2``, ``cuda:01``, ``cuda : 1``, ``nvidia#3``.
_NUMBERED = re.compile(r"(?:(?:cuda|gpu|nvidia)\s*[:#_ -]?\s*)?([0-9]+)", re.ASCII)
#: A negative GPU number (``cuda:-1``, ``-1``: the CPU in some libraries, the current GPU in others).
_NEGATIVE = re.compile(r"(?:(?:cuda|gpu|nvidia)\s*[:#_ ]?\s*)?-\s*[0-9]+", re.ASCII)


class DeviceNameError(ConfigError, ValueError):
    """A device setting that is not a device name; ``suggestion`` is the name probably meant (or None).

    A :class:`ValueError` too, so that a pydantic validator turns it into a validation error of its key.

    >>> str(DeviceNameError("gpu", "cuda"))
    "'gpu' is not a device (did you mean 'cuda'?); use auto (the GPU when there is one, else the CPU), \
cpu, cuda or cuda:N (GPU N)"
    """

    def __init__(self, name: str, suggestion: str | None, note: str = "") -> None:
        self.name, self.suggestion, self.note = name, suggestion, note
        hint = f"did you mean {suggestion!r}?" if suggestion else note
        super().__init__(f"{name!r} is not a device{f' ({hint})' if hint else ''}; use {DEVICE_NAMES}")

    def __reduce__(self) -> tuple[type, tuple[str, str | None, str]]:  # picklable
        return (type(self), (self.name, self.suggestion, self.note))


def parse_device_name(value: str | torch.device | None) -> str:
    """``value`` as a medmm device name, normalised: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Case and surrounding spaces do not matter (``" CUDA:1 "`` is ``cuda:1``); ``None`` and ``""`` are
    ``auto``. Anything else must be exact: a GPU number is written ``cuda:N`` with ``N`` a plain
    non-negative number (``0``, ``1``, ``12``). Only the name is checked here; whether the machine has
    that GPU is decided by :func:`resolve_device`. This is the one place the rules live:
    :func:`resolve_device` and the training config's ``train.device`` both call it.

    Parameters
    ----------
    value
        The setting as given (a string, a :class:`torch.device`, or None).

    Returns
    -------
    str
        The normalised name; ``torch.device(name)`` accepts every one but ``auto``.

    Raises
    ------
    DeviceNameError
        Not a device name (a :class:`~medmm.errors.ConfigError` and a :class:`ValueError`). Its message
        and ``suggestion`` give the name probably meant: ``gpu`` -> ``cuda``; ``gpu0``, ``cuda1``,
        ``cuda 2``, ``cuda:01``, ``CUDA : 1``, ``1`` -> ``cuda:N``; ``cuda:`` -> ``cuda``; ``cpu:0`` ->
        ``cpu``; ``atuo`` -> ``auto``. A negative number (``cuda:-1``) is refused with a note (GPU
        numbers start at 0; -1 means the CPU in some libraries), names with nothing close (``mps``)
        without a suggestion.

    Examples
    --------
    >>> parse_device_name(" CUDA:1 "), parse_device_name(""), parse_device_name(None)
    ('cuda:1', 'auto', 'auto')
    >>> parse_device_name("cuda:01")
    Traceback (most recent call last):
    ...
    medmm.devices.DeviceNameError: 'cuda:01' is not a device (did you mean 'cuda:1'?); use auto (the \
GPU when there is one, else the CPU), cpu, cuda or cuda:N (GPU N)
    """
    given = "" if value is None else str(value)
    text = given.strip().lower() or "auto"
    if _VALID.fullmatch(text):
        return text
    numbered = _NUMBERED.fullmatch(text)
    if numbered:
        raise DeviceNameError(given, f"cuda:{int(numbered.group(1))}")
    if _NEGATIVE.fullmatch(text):
        raise DeviceNameError(
            given, None, "GPU numbers start at 0: cuda:0 is the first GPU, and the CPU is cpu, not -1"
        )
    if text.startswith(("gpu", "nvidia", "cuda")):
        raise DeviceNameError(given, "cuda")
    kind = re.split(r"[\s:]", text, maxsplit=1)[0]
    close = difflib.get_close_matches(kind, ["auto", "cpu", "cuda"], n=1)
    raise DeviceNameError(given, close[0] if close else None)


def _setting(source: str, value: str) -> str:
    """How to give ``value`` to the setting ``source`` (an option or a config key, maybe after a file).

    >>> _setting("--device", "cuda"), _setting("cfg.yaml: train.device", "cpu")
    ('use --device cuda', 'set train.device: cpu')
    """
    key = source.rsplit(" ", 1)[-1]
    return f"use {key} {value}" if key.startswith("-") else f"set {key}: {value}"


def _fix(source: str) -> str:
    """The fix offered for a device setting that came from ``source``.

    >>> _fix("--device")
    'use --device auto or --device cpu (auto: the GPU when there is one, else the CPU)'
    >>> _fix("workflows/train.yaml: train.device")
    'set train.device: auto or cpu (auto: the GPU when there is one, else the CPU)'
    """
    key = source.rsplit(" ", 1)[-1]
    tail = "(auto: the GPU when there is one, else the CPU)"
    if key.startswith("-"):
        return f"use {key} auto or {key} cpu {tail}"
    return f"set {key}: auto or cpu {tail}"


def resolve_device(name: str | torch.device | None, *, source: str) -> torch.device:
    """The :class:`torch.device` a device setting names; refuses a GPU the machine does not have.

    Parameters
    ----------
    name
        ``auto`` / ``""`` / ``None`` (the GPU when CUDA is available, else the CPU), ``cpu``, ``cuda`` or
        ``cuda:N`` (case and surrounding spaces do not matter), or a :class:`torch.device`.
    source
        Where the setting came from, used in the error message: a command-line option (``"--device"``)
        or a config key, optionally after its file (``"workflows/train.yaml: train.device"``).

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        An unknown name; ``cuda`` / ``cuda:N`` when ``torch.cuda.is_available()`` is False; ``cuda:N``
        with ``N`` not below ``torch.cuda.device_count()``. The message names ``source`` and the fix.

    Examples
    --------
    >>> resolve_device(" CPU ", source="--device").type
    'cpu'
    >>> resolve_device("auto", source="--device").type in ("cpu", "cuda")
    True
    >>> try:
    ...     resolve_device("gpu", source="--device")
    ... except ConfigError as exc:
    ...     print(str(exc)[:52])
    --device 'gpu': not a device; choose cpu or cuda (or
    """
    try:
        text = parse_device_name(name)
    except DeviceNameError as exc:
        message = (
            f"{source} {str(name)!r}: not a device; choose cpu or cuda (or cuda:N for GPU N), or auto "
            "(the GPU when there is one, else the CPU)"
        )
        if exc.suggestion:
            message += f". Fix: {_setting(source, exc.suggestion)}"
        elif exc.note:
            message += f"; {exc.note}"
        raise ConfigError(message) from None
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    _, colon, index = text.partition(":")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"{source} {str(name)!r}: CUDA is not available on this machine (torch.cuda.is_available() is "
            f"False: no NVIDIA GPU, no driver, or a CPU-only torch). Fix: {_fix(source)}"
        )
    count = torch.cuda.device_count()
    if colon and int(index) >= count:
        raise ConfigError(
            f"{source} {str(name)!r}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1}). "
            f"Fix: use one of them, or {_fix(source)}"
        )
    return torch.device(text)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype training uses on ``device`` by default (``None``: float32, no autocast).

    CUDA GPUs with native bfloat16 (compute capability >= 8.0: A100, H100, RTX 30xx and later) get
    ``torch.bfloat16`` - same exponent range as float32, so no gradient scaling; older GPUs (V100, T4)
    get ``torch.float16``, which needs a :class:`torch.amp.GradScaler` (:func:`needs_grad_scaler`).
    The CPU gets ``None``: bfloat16 autocast is slower than float32 on most CPUs, and float32 keeps CPU
    results bit-for-bit reproducible. (The autocast code path itself is device-generic: callers may
    force a dtype on the CPU, which is how the tests run it.)

    >>> autocast_dtype(torch.device("cpu")) is None
    True
    """
    if device.type != "cuda":
        return None
    with torch.cuda.device(device):
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if native_bf16 else torch.float16


def needs_grad_scaler(dtype: torch.dtype | None) -> bool:
    """Whether training under autocast ``dtype`` needs loss scaling (float16 only: its range is narrow).

    >>> needs_grad_scaler(torch.float16), needs_grad_scaler(torch.bfloat16), needs_grad_scaler(None)
    (True, False, False)
    """
    return dtype == torch.float16


def pin_memory_for(device: torch.device) -> bool:
    """Whether host batches should be pinned (page-locked) so copies to ``device`` can be asynchronous.

    Only for CUDA: pinning needs an accelerator (torch refuses it on a CPU-only machine) and buys nothing
    when the data stays on the CPU.

    >>> pin_memory_for(torch.device("cpu"))
    False
    """
    return device.type == "cuda"


@contextmanager
def deterministic_kernels(enabled: bool = True) -> Iterator[None]:
    """Run the block with torch's deterministic-kernel settings on (or off), restoring them afterwards.

    ``enabled=True``: :func:`torch.use_deterministic_algorithms` (``warn_only``: an op with no
    deterministic kernel warns instead of failing), cuDNN deterministic and without benchmarking, and
    ``CUBLAS_WORKSPACE_CONFIG`` set (if the user has not set it) so cuBLAS GEMMs are deterministic on CUDA.
    cuBLAS reads that variable when its handle is created, i.e. at the first matrix product on a GPU of
    the process: if CUDA was already used before (e.g. earlier in a notebook) without it, a warning says
    so. ``enabled=False``: the non-deterministic (default) settings. On the CPU the kernels torch uses
    here are deterministic either way.

    >>> before = torch.are_deterministic_algorithms_enabled()
    >>> with deterministic_kernels():
    ...     torch.are_deterministic_algorithms_enabled()
    True
    >>> torch.are_deterministic_algorithms_enabled() == before
    True
    """
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if enabled:
        if "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                log.warning(
                    "CUDA was initialised before deterministic training asked for a fixed cuBLAS workspace; "
                    "GPU matrix products may not be bit-for-bit reproducible in this process. Fix: set "
                    "CUBLAS_WORKSPACE_CONFIG=%s before starting Python (or before the first GPU use)",
                    CUBLAS_WORKSPACE,
                )
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False  # input shapes vary with the modalities present
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic = before[2]
        torch.backends.cudnn.benchmark = before[3]
