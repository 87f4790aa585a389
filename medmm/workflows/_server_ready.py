"""Imported last by the worker server (:mod:`medmm.workflows.forkserver`), after the modules it preloads.

Its import moves every object the server holds (modules, classes, functions: ~90,000 for ``medmm
ingest``) into the garbage collector's permanent generation (:func:`gc.freeze`), as Python's
documentation advises before ``fork()`` without ``exec()``. Without it, the first full collection in
each forked worker walks all of them and writes to the pages that hold them (copy-on-write): ~65 ms of
CPU per worker before it has done anything (measured: a forked child's ``gc.collect()`` 65 ms ->
0.5 ms), and pages no longer shared with the server. The objects stay alive as before (frozen
objects are never collected; these live as long as the process anyway).

Nothing imports this module but the server; imported anywhere else it would only freeze that
process's current objects, which is harmless.

>>> import medmm.workflows._server_ready  # doctest: +SKIP
"""

from __future__ import annotations

import gc

__all__: list[str] = []

gc.freeze()
