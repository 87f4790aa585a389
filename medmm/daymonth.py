"""Day/month order of numeric dates (``03/04/2025``): one rule for every stage that reads them.

A date written ``nn/nn/yyyy`` can be day/month (most of Europe) or month/day (the US); a single
value such as ``03/04/2025`` does not say which. The order is therefore decided for a **whole
column** from the rows that do tell, and never guessed:

* **day first** when some row's first field exceeds 12 (``25/04/2025``) and no row's second field does;
* **month first** when some row's second field exceeds 12 (``04/25/2025``) and no row's first field
  does, or when every row has equal fields (``03/03/2025``: both orders read the same day);
* **unknown** when no row tells (every field 12 or less, some unequal): the caller refuses the
  column, rather than defaulting to either order;
* **conflicting** when one row can only be day/month and another only month/day: no single order
  reads the column, so its ambiguous rows cannot be trusted either; the caller refuses it.

A row that is a date in neither order (``99/99/9999``, ``00/00/0000``: an export's placeholder for an
unknown date, or a typo) does not take part: it is unreadable whichever the order, and the caller
reports that row alone.

Dotted dates (``04.03.2025``) are always day first, as everywhere dots are used; a dotted date whose
second field exceeds 12 is not a date.

Used by the reports stage (:mod:`medmm.reports.io.dates`, ``medmm reports parse --date-column``) and
the signals stage (:mod:`medmm.signals.readers.timestamps`, vitals tables). A reason never quotes a
date value (dates are identifying): only the column is named.

>>> slashed_order([(3, 4), (25, 4)])
'day-first'
>>> slashed_order([(3, 4), (4, 25)])
'month-first'
>>> slashed_order([(3, 4), (5, 6)])
'unknown'
>>> slashed_order([(25, 4), (4, 25)])
'conflicting'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from medmm.errors import InputError

__all__ = ["DOTTED_DAY_FIRST", "Order", "day_first_or_refuse", "slashed_order"]

Order = Literal["day-first", "month-first", "unknown", "conflicting"]

#: Dotted dates (``dd.mm.yyyy``) are day first; there is no month-first dotted convention.
DOTTED_DAY_FIRST = True


def slashed_order(pairs: Iterable[tuple[int, int]]) -> Order:
    """The day/month order the ``(first field, second field)`` pairs of one column's dates show.

    Parameters
    ----------
    pairs
        One ``(first, second)`` pair of integers per ``nn/nn/yyyy`` value of the column.

    Returns
    -------
    Order
        ``"day-first"``, ``"month-first"``, ``"unknown"`` (no row tells) or ``"conflicting"`` (rows
        tell both orders); see the module docstring. No pairs at all is ``"month-first"``: the order
        then changes nothing.

    Examples
    --------
    >>> slashed_order([(13, 4), (3, 4)])
    'day-first'
    >>> slashed_order([(3, 3), (7, 7)])
    'month-first'
    >>> slashed_order([(3, 4)])
    'unknown'
    """
    # a row that is a date in neither order (a placeholder such as 99/99/9999, 00/00/0000, a typo) tells
    # nothing: it is that row's problem (the caller reports it), not the column's order
    pairs = [(a, b) for a, b in pairs if _a_date(a, b) or _a_date(b, a)]
    day_told = any(a > 12 for a, _ in pairs)
    month_told = any(b > 12 for _, b in pairs)
    if day_told and month_told:
        return "conflicting"
    if day_told:
        return "day-first"
    if month_told or all(a == b for a, b in pairs):
        return "month-first"
    return "unknown"


def _a_date(day: int, month: int) -> bool:
    """Whether ``day`` and ``month`` can be a day and a month (the year is not looked at)."""
    return 1 <= day <= 31 and 1 <= month <= 12


def day_first_or_refuse(
    pairs: Iterable[tuple[int, int]], path: str, column: str, error: type[InputError], fix: str
) -> bool:
    """``True`` for a day-first column, ``False`` for month-first; raise ``error`` when undecidable.

    Parameters
    ----------
    pairs
        ``(first, second)`` fields of the column's ``nn/nn/yyyy`` values (:func:`slashed_order`).
    path
        The table the column is in (the error names it).
    column
        The column's name (the error names it, never a value).
    error
        The stage's :class:`~medmm.errors.InputError` subclass to raise.
    fix
        The fix the error tells.

    Raises
    ------
    InputError
        ``error`` when the order is ``"unknown"`` or ``"conflicting"``.

    Examples
    --------
    >>> day_first_or_refuse([(25, 4)], "r.csv", "d", InputError, "write ISO dates")
    True
    >>> try:
    ...     day_first_or_refuse([(3, 4), (5, 6)], "r.csv", "d", InputError, "write ISO dates")
    ... except InputError as err:
    ...     print(err.problem)
    the dates in column 'd' (nn/nn/yyyy) can be day/month or month/day and no row tells which
    """
    order = slashed_order(pairs)
    if order == "unknown":
        problem = f"the dates in column {column!r} (nn/nn/yyyy) can be day/month or month/day and no row "
        problem += "tells which"
        raise error(path, problem, fix)
    if order == "conflicting":
        problem = (
            f"the dates in column {column!r} (nn/nn/yyyy) disagree: some rows can only be day/month, "
            "others only month/day"
        )
        raise error(path, problem, fix)
    return order == "day-first"
